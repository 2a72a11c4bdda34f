"""Tumor Occurrence Maps: the body frame is anatomical, diversity ranks mixed above single-disease
sets, outputs and errors are as documented, and tom-correlate computes Spearman's rho."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from lion_nnunet.analysis.body_frame import (
    LANDMARK_HEIGHT_MM,
    FrameGrid,
    fit_body_frame,
    orient_lps,
)
from lion_nnunet.analysis.tom import sets_from_splits
from lion_nnunet.cli import main
from lion_nnunet.labels import get_label_set
from lion_nnunet.synthetic.phantoms import make_cohort

DATASET_ID = 587
FDG = get_label_set("fdg")
FDG_LANDMARKS = tuple(n for n in FDG.organ_names if n in LANDMARK_HEIGHT_MM)


@pytest.fixture(scope="module")
def tom_dataset(tmp_path_factory: pytest.TempPathFactory, session_nnunet_env: dict) -> Path:
    """40 synthetic FDG cases (seed 0) converted to a LION raw dataset with organ labels."""
    cohort = tmp_path_factory.mktemp("tom_cohort")
    make_cohort(cohort, "fdg", 40, seed=0, progress=False)
    args = ["convert", "autopet", "--input", str(cohort / "studies"), "--organs",
            str(cohort / "organs"), "--metadata", str(cohort / "cases.csv"), "--tracer", "fdg",
            "--dataset-id", str(DATASET_ID), "--name", "TOM_TEST", "-np", "1",
            "--no-pbar"]  # fmt: skip
    assert main(args) == 0
    return next(session_nnunet_env["nnUNet_raw"].glob(f"Dataset{DATASET_ID}_*"))


@pytest.fixture(scope="module")
def tom_run(tom_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lion tom on equal-size single-disease and mixed-disease subsets, plus --group-by disease."""
    cases = pd.read_csv(tom_dataset / "lion_cases.csv")
    by = {d: sorted(g.case_id) for d, g in cases.groupby("disease")}
    rows = [(d, c) for d in ("lymphoma", "lung_cancer", "melanoma") for c in by[d][:9]]
    rows += [("mixed", c) for d in ("lymphoma", "lung_cancer", "melanoma") for c in by[d][:3]]
    out = tmp_path_factory.mktemp("tom_out")
    pd.DataFrame(rows, columns=["set", "case_id"]).to_csv(out / "sets.csv", index=False)
    args = ["tom", "--dataset", str(DATASET_ID), "--sets", str(out / "sets.csv"), "--group-by",
            "disease", "-o", str(out / "tom"), "-np", "1", "--no-pbar"]  # fmt: skip
    assert main(args) == 0
    return out / "tom"


def test_mixed_disease_subset_is_more_diverse_than_single_disease_subsets(tom_run: Path) -> None:
    div = pd.read_csv(tom_run / "diversity.csv").set_index("set")
    mixed = div.loc["mixed"]
    singles = div.loc[["lymphoma", "lung_cancer", "melanoma"]]
    assert (singles.n_cases == mixed.n_cases).all()  # same size
    # the occurrence density of the mixed set is flatter than that of every single disease
    assert (mixed.entropy > singles.entropy).all(), div[["entropy"]]
    # ... and its lesions are more spread out than those of the most regional disease
    lung = div.loc["lung_cancer"]
    assert mixed.lesion_spread_mm > lung.lesion_spread_mm
    assert mixed.regions_hit > lung.regions_hit
    assert mixed.coverage > 0 and div.loc["disease=negative"].coverage == 0


def test_tom_outputs_are_consistent(tom_run: Path, tom_dataset: Path) -> None:
    div = pd.read_csv(tom_run / "diversity.csv").set_index("set")
    assert div.loc["all"].n_cases == 40
    frames = pd.read_csv(tom_run / "frames.csv")
    assert len(frames) == 40 and (frames.z_method == "landmarks").all()
    assert (frames.outline == "pet").all() and (frames.tumor_points_outside_grid == 0).all()
    tom = sitk.ReadImage(str(tom_run / "mixed.nii.gz"))
    arr = sitk.GetArrayFromImage(tom)
    assert arr.shape == (128, 32, 64) and 1 <= arr.max() <= 9
    body = sitk.GetArrayFromImage(sitk.ReadImage(str(tom_run / "body_frequency.nii.gz")))
    assert body.max() <= 1.0 and ((arr > 0) <= (body > 0)).all()  # tumors lie inside the body
    assert (tom_run / "mixed.png").stat().st_size > 5000
    assert (tom_run / "disease-lymphoma.nii.gz").is_file()
    # lesion counts agree with the converter's count (same connectivity)
    cases = pd.read_csv(tom_dataset / "lion_cases.csv")
    assert div.loc["all"].n_lesions == cases.n_lesions.sum()
    members = pd.read_csv(tom_run / "sets.csv")
    assert (members.set == "mixed").sum() == 9


def test_rerun_refuses_then_resumes_from_cache(tom_dataset: Path, tmp_path: Path) -> None:
    args = ["tom", "--dataset", str(DATASET_ID), "-o", str(tmp_path), "--no-pbar", "-np", "1",
            "--grid", "16", "8", "32"]  # fmt: skip
    assert main(args) == 0
    assert main(args) == 1  # diversity.csv exists
    cache = sorted((tmp_path / ".cases").glob("*.npz"))
    stamps = [p.stat().st_mtime_ns for p in cache]
    (tmp_path / "diversity.csv").unlink()  # as if the first run had crashed before the end
    assert main(args) == 0
    assert [p.stat().st_mtime_ns for p in cache] == stamps


def _phantom_labels(flip_z: bool, scale: float, shift_mm: float, organs: tuple[str, ...]):
    """A label map of a body scaled by ``scale`` with organs at their canonical heights and one
    tumor halfway between liver and kidneys; z axis flipped in memory when ``flip_z``."""
    spacing = 5.0
    nz, ny, nx = 400, 40, 60
    lab = np.zeros((nz, ny, nx), np.uint8)
    body = np.zeros_like(lab, dtype=bool)
    z_of = {k: round((v * scale + shift_mm) / spacing) for k, v in LANDMARK_HEIGHT_MM.items()}
    body[z_of["urinary_bladder"] - 20 : z_of["brain"] + 10, 5:35, 10:50] = True
    for name in organs:
        z = z_of[name]
        lab[z - 2 : z + 3, 15:25, 25:35] = FDG.label_of(name)
    tumor_z = (LANDMARK_HEIGHT_MM["liver"] + LANDMARK_HEIGHT_MM["kidneys"]) / 2
    zt = round((tumor_z * scale + shift_mm) / spacing)
    lab[zt, 18:20, 40:42] = 1
    img = sitk.GetImageFromArray(lab[::-1] if flip_z else lab)
    img.SetSpacing((spacing,) * 3)
    if flip_z:  # same anatomy stored feet-last: direction z = -1
        img.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
        img.SetOrigin((0.0, 0.0, (nz - 1) * spacing))
    return img, body


@pytest.mark.parametrize("flip_z", [False, True])
def test_body_frame_maps_landmarks_to_canonical_heights(flip_z: bool) -> None:
    img, body = _phantom_labels(flip_z, scale=1.1, shift_mm=-700.0, organs=FDG_LANDMARKS)
    oriented = orient_lps(img)
    labels = sitk.GetArrayFromImage(oriented)
    ids = FDG.labels()
    if flip_z:
        body = body[::-1]  # same anatomy; the mask was built feet-first like the labels
    frame = fit_body_frame(labels, oriented.GetSpacing(), oriented.GetOrigin(), ids, body)
    assert frame.z_method == "landmarks"
    assert frame.slope_z == pytest.approx(1 / 1.1, rel=0.02)
    for name in ("brain", "heart", "urinary_bladder"):
        idx = np.argwhere(labels == FDG.label_of(name)).mean(axis=0)
        assert frame.to_canonical(idx[None])[0, 2] == pytest.approx(LANDMARK_HEIGHT_MM[name], abs=3)
    tumor = np.argwhere(labels == 1).mean(axis=0)
    canon = frame.to_canonical(tumor[None])[0]
    assert canon[2] == pytest.approx(1087.5, abs=8)
    assert canon[0] > 0  # x index 40 of 10..50 is right of the body centre: patient left


def test_fallback_frames_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = tmp_path / "labelsTr"
    labels.mkdir()
    for cid, organs in (("one", ("liver",)), ("none", ()), ("full", FDG_LANDMARKS)):
        img, _ = _phantom_labels(False, 1.0, -600.0, organs)
        sitk.WriteImage(img, str(labels / f"{cid}.nii.gz"))
    args = ["tom", "--labels", str(labels), "--tracer", "fdg", "-o", str(tmp_path / "t"),
            "--no-pbar", "-np", "1", "--grid", "16", "8", "32"]  # fmt: skip
    assert main(args) == 0
    assert "fallback body frame" in capsys.readouterr().out
    frames = pd.read_csv(tmp_path / "t" / "frames.csv").set_index("case_id")
    assert frames.loc["full", "z_method"] == "landmarks"
    assert frames.loc["one", "z_method"] == "one-landmark"
    assert frames.loc["none", "z_method"] == "body-top"
    assert frames.loc["none", "outline"] == "labels"
    settings = json.loads((tmp_path / "t" / "tom.json").read_text())
    assert sorted(settings["fallback_cases"]) == ["none", "one"]


def test_sets_from_lion_splits_table(tmp_path: Path) -> None:
    rows = [(f, n, role, f"c{i}", "lymphoma") for f in (0, 1) for n in (2, 4)
            for i, role in enumerate(["train"] * n + ["val"])]  # fmt: skip
    path = tmp_path / "lion_splits.csv"
    pd.DataFrame(rows, columns=["fold", "subset_size", "role", "case_id", "disease"]).to_csv(
        path, index=False
    )
    sets = sets_from_splits(path)
    assert sorted(sets) == [
        "fold=0;subset_size=2", "fold=0;subset_size=4", "fold=1;subset_size=2",
        "fold=1;subset_size=4",
    ]  # fmt: skip
    assert sets["fold=1;subset_size=4"] == ["c0", "c1", "c2", "c3"]  # val rows left out


def test_bad_input_gives_one_clear_error(
    tom_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    base = ["tom", "--dataset", str(DATASET_ID), "--no-pbar", "-np", "1"]
    assert main([*base, "--group-by", "hospital", "-o", str(tmp_path / "a")]) == 1
    assert "no column 'hospital' to group by" in capsys.readouterr().err
    sets = tmp_path / "sets.csv"
    pd.DataFrame({"set": ["x"], "case_id": ["NOT_A_CASE"]}).to_csv(sets, index=False)
    assert main([*base, "--sets", str(sets), "-o", str(tmp_path / "b")]) == 1
    assert "NOT_A_CASE" in capsys.readouterr().err
    assert main([*base, "--grid", "1", "8", "8", "-o", str(tmp_path / "c")]) == 1
    assert "--grid" in capsys.readouterr().err


def test_grid_bins_points() -> None:
    grid = FrameGrid((4, 2, 8), (0, 0, 0), (40, 20, 80))
    flat, outside = grid.flat_bins(np.array([[5, 5, 5], [35, 15, 75], [50, 5, 5], [5, 5, 5]]))
    assert outside == 1 and flat.tolist() == [0, 4 * 2 * 8 - 1]


def test_tom_correlate_spearman(tom_run: Path, tmp_path: Path) -> None:
    div = pd.read_csv(tom_run / "diversity.csv")
    sets = ["lymphoma", "lung_cancer", "melanoma", "mixed"]
    entropy = div.set_index("set").loc[sets, "entropy"]
    # models whose Dice follows the entropy rank exactly: rho = 1
    dice = 0.5 + 0.1 * entropy.rank().to_numpy()
    evals = tmp_path / "models.csv"
    pd.DataFrame({"set": sets, "dice_median": dice}).to_csv(evals, index=False)
    out = tmp_path / "corr.png"
    args = ["tom-correlate", "--tom", str(tom_run / "diversity.csv"), "--eval", str(evals),
            "--measure", "entropy", "-o", str(out)]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.with_suffix(".json").read_text())
    assert result["rho"] == pytest.approx(1.0) and result["n"] == 4
    assert out.stat().st_size > 5000 and len(pd.read_csv(out.with_suffix(".csv"))) == 4

    # --pairs: one summary per model with one row per group; --eval-filter picks the overall row
    pairs = []
    falling = 0.5 + 0.1 * (-entropy).rank().to_numpy()  # Dice falls with entropy: rho = -1
    for i, (name, d) in enumerate(zip(sets, falling, strict=True)):
        summary = tmp_path / f"eval{i}.csv"
        pd.DataFrame({"group": ["all", "lymphoma"], "dice": [d, 0.1]}).to_csv(summary, index=False)
        pairs.append((name, summary.name))
    pairs_csv = tmp_path / "pairs.csv"
    pd.DataFrame(pairs, columns=["set", "eval"]).to_csv(pairs_csv, index=False)
    args = ["tom-correlate", "--tom", str(tom_run / "diversity.csv"), "--pairs", str(pairs_csv),
            "--eval-filter", "group=all", "--measure", "entropy", "-o", str(out),
            "--json"]  # fmt: skip
    assert main(args) == 0
    assert json.loads(out.with_suffix(".json").read_text())["rho"] == pytest.approx(-1.0)
    no_filter = ["tom-correlate", "--tom", str(tom_run / "diversity.csv"), "--pairs",
                 str(pairs_csv), "--measure", "entropy", "-o", str(out)]  # fmt: skip
    assert main(no_filter) == 1  # two rows per summary and no --eval-filter
