"""`lion organs`: TotalSegmentator orchestration, with only TotalSegmentator's network replaced.

The stand-in for ``totalsegmentator.python_api.totalsegmentator`` checks its arguments against
the installed function's signature and writes what TotalSegmentator writes for ``ml=True``: one
uint8 label map on the input CT's grid with TotalSegmentator v2 ids (``roi_subset`` applied),
here from the phantom's known organs. Everything else (study discovery, tasks, resuming, the
tree, its conversion) is the real code.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.labels import PSMA


class FakeTotalSegmentator:
    """Writes the phantom's organ map of the study as TotalSegmentator would; records calls."""

    def __init__(self, cohort: Path) -> None:
        from totalsegmentator.map_to_binary import class_map
        from totalsegmentator.python_api import totalsegmentator as real

        self.cohort, self.class_map, self.signature = cohort, class_map, inspect.signature(real)
        self.calls: list[dict] = []
        self.weights_paths: set[str | None] = set()

    def __call__(self, *args, **kwargs) -> None:
        bound = self.signature.bind(*args, **kwargs)  # a wrong argument name fails here
        bound.apply_defaults()
        a = bound.arguments
        self.calls.append({k: a[k] for k in ("input", "task", "ml", "roi_subset", "device")})
        self.weights_paths.add(os.environ.get("TOTALSEG_WEIGHTS_PATH"))
        from totalsegmentator.config import setup_nnunet

        setup_nnunet()  # as the real API does: nnUNet_raw/... := TotalSegmentator's weights folder
        ct_path = Path(a["input"])
        rel = Path(*ct_path.parts[-3:-1])  # <patient>/<study>
        ct = sitk.ReadImage(str(ct_path))
        known = sitk.ReadImage(str(self.cohort / "organs" / rel / f"{a['task']}.nii.gz"))
        out = sitk.Resample(known, ct, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        arr = sitk.GetArrayFromImage(out).astype(np.uint8)
        if a["roi_subset"] is not None:
            keep = [i for i, n in self.class_map[a["task"]].items() if n in a["roi_subset"]]
            arr[~np.isin(arr, keep)] = 0
        img = sitk.GetImageFromArray(arr)
        img.CopyInformation(ct)
        sitk.WriteImage(img, str(a["output"]))


@pytest.fixture
def fake_ts(psma_cohort: Path, monkeypatch: pytest.MonkeyPatch) -> FakeTotalSegmentator:
    import totalsegmentator.python_api as api

    fake = FakeTotalSegmentator(psma_cohort)
    monkeypatch.setattr(api, "totalsegmentator", fake)
    return fake


#: The weight sets TotalSegmentator 2.x downloads for PSMA's two calls, by folder name (its
#: release zips unpack to these): ``total`` = parts 1-5 (291-295), ``head_glands_cavities`` = 775,
#: and the 6 mm ``total`` model (298) that crops the CT for ``roi_subset`` and for the skull crop.
TOTAL_WEIGHTS = (
    "Dataset291_TotalSegmentator_part1_organs_1559subj",
    "Dataset292_TotalSegmentator_part2_vertebrae_1532subj",
    "Dataset293_TotalSegmentator_part3_cardiac_1559subj",
    "Dataset294_TotalSegmentator_part4_muscles_1559subj",
    "Dataset295_TotalSegmentator_part5_ribs_1559subj",
    "Dataset298_TotalSegmentator_total_6mm_1559subj",
)
GLANDS_WEIGHTS = ("Dataset775_head_glands_cavities_492subj",)


def make_weights(folder: Path, names: tuple[str, ...]) -> Path:
    """TotalSegmentator's weights folder as its zips unpack: <set>/<trainer>/fold_0/checkpoint."""
    for name in names:
        fold = folder / name / "nnUNetTrainerNoMirroring__nnUNetPlans__3d_fullres" / "fold_0"
        fold.mkdir(parents=True)
        (fold / "checkpoint_final.pth").write_bytes(b"weights")
    return folder


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    return make_weights(tmp_path / "totalseg_weights", TOTAL_WEIGHTS + GLANDS_WEIGHTS)


def _organs(inp: Path, out: Path, *extra: str, weights: Path | None = None) -> int:
    given = ["--weights", str(weights)] if weights else []
    return main(["organs", "--input", str(inp), "--output", str(out), "--tracer", "psma",
                 "--device", "cpu", "--no-pbar", *given, *extra])  # fmt: skip


def test_lion_organs_runs_the_needed_tasks_resumes_and_feeds_convert(
    psma_cohort: Path, fake_ts: FakeTotalSegmentator, tmp_path: Path, nnunet_dirs, weights: Path
) -> None:
    studies = psma_cohort / "studies"
    out = tmp_path / "organs"
    assert _organs(studies, out, weights=weights) == 0
    assert fake_ts.weights_paths == {str(weights)}  # TotalSegmentator was pointed there
    assert "TOTALSEG_WEIGHTS_PATH" not in os.environ  # and the environment is restored
    assert os.environ["nnUNet_raw"] == str(nnunet_dirs["nnUNet_raw"])
    total_classes = sorted({s.name for o in PSMA.organs for s in o.sources if s.task == "total"})
    assert len(fake_ts.calls) == 2 * 8
    for call in fake_ts.calls:
        assert call["ml"] is True and call["device"] == "cpu"
        assert Path(call["input"]).name == "CTres.nii.gz"  # no CT.nii.gz in this tree
        want = total_classes if call["task"] == "total" else None
        assert call["roi_subset"] == want
    assert sorted({c["task"] for c in fake_ts.calls}) == ["head_glands_cavities", "total"]
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted(
        f"{p.parent.relative_to(studies).as_posix()}/{t}.nii.gz"
        for p in studies.rglob("SUV.nii.gz")
        for t in ("head_glands_cavities", "total")
    )  # the tree, and no temporary leftovers
    # resumable: nothing to do again; a lost file is redone alone
    fake_ts.calls.clear()
    assert _organs(studies, out, weights=weights) == 0 and fake_ts.calls == []
    lost = next(out.rglob("head_glands_cavities.nii.gz"))
    lost.unlink()
    assert _organs(studies, out, weights=weights) == 0
    assert [(c["task"], Path(c["input"]).parent.name) for c in fake_ts.calls] == [
        ("head_glands_cavities", lost.parent.name)
    ]
    # lion convert reads the tree; labels equal those from the phantom's own organ files
    base = ["convert", "autopet", "--input", str(studies), "--tracer", "psma", "-np", "1",
            "--no-pbar"]  # fmt: skip
    assert main([*base, "--organs", str(out), "--dataset-id", "731", "--name", "Ours"]) == 0
    assert main([*base, "--organs", str(psma_cohort / "organs"), "--dataset-id", "732",
                 "--name", "Ref"]) == 0  # fmt: skip
    raw = Path(nnunet_dirs["nnUNet_raw"])
    ours = sorted((raw / "Dataset731_Ours" / "labelsTr").glob("*.nii.gz"))
    assert len(ours) == 8
    glands = PSMA.label_of("salivary_glands")
    seen_glands = False
    for path in ours:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))
        b = sitk.GetArrayFromImage(
            sitk.ReadImage(str(raw / "Dataset732_Ref" / "labelsTr" / path.name))
        )
        np.testing.assert_array_equal(a, b)
        seen_glands |= bool((a == glands).any())
    assert seen_glands


def test_lion_organs_errors(
    psma_cohort: Path,
    fake_ts: FakeTotalSegmentator,
    tmp_path: Path,
    monkeypatch,
    capsys,
    weights: Path,
) -> None:
    studies = tmp_path / "studies"
    for p in sorted((psma_cohort / "studies").iterdir())[:2]:
        shutil.copytree(p, studies / p.name)
    no_ct = next(studies.rglob("CTres.nii.gz"))
    no_ct.unlink()
    assert _organs(studies, tmp_path / "organs", weights=weights) == 1
    err = capsys.readouterr().err
    assert "1 of 2 study(ies) failed" in err and f"{no_ct.parent}: no CT" in err
    assert len(list((tmp_path / "organs").rglob("*.nii.gz"))) == 2  # the other study is done
    # TotalSegmentator not installed: one sentence with the fix, before any work
    monkeypatch.setitem(sys.modules, "totalsegmentator.python_api", None)
    assert _organs(studies, tmp_path / "organs2", weights=weights) == 1
    assert "pip install 'lion-nnunet[organs]'" in capsys.readouterr().err
    assert not (tmp_path / "organs2").exists()


def test_missing_weights_are_named_before_any_study(
    psma_cohort: Path, fake_ts: FakeTotalSegmentator, tmp_path: Path, capsys
) -> None:
    """Only the ``total`` weights copied in: PSMA's glands weights are named, nothing runs."""
    partial = make_weights(tmp_path / "weights", TOTAL_WEIGHTS)
    (partial / GLANDS_WEIGHTS[0]).mkdir()  # an empty folder (an interrupted unzip) is not weights
    out = tmp_path / "organs"
    assert _organs(psma_cohort / "studies", out, weights=partial) == 1
    err = capsys.readouterr().err
    assert f"{partial}: TotalSegmentator weights missing for {GLANDS_WEIGHTS[0]} (task 775);" in err
    assert not any(name in err for name in TOTAL_WEIGHTS)
    assert "totalseg_import_weights" in err and "--weights DIR" in err
    assert len(err.strip().splitlines()) == 1
    assert fake_ts.calls == [] and not out.exists()


def test_weights_from_totalsegmentators_home_folder(
    psma_cohort: Path, fake_ts: FakeTotalSegmentator, tmp_path: Path, monkeypatch, capsys
) -> None:
    """Without --weights: TOTALSEG_HOME_DIR/nnunet/results, TotalSegmentator's own folder."""
    home = tmp_path / "ts_home"
    monkeypatch.delenv("TOTALSEG_WEIGHTS_PATH", raising=False)
    monkeypatch.setenv("TOTALSEG_HOME_DIR", str(home))
    studies = tmp_path / "studies"
    first = sorted((psma_cohort / "studies").iterdir())[0]
    shutil.copytree(first, studies / first.name)
    assert _organs(studies, tmp_path / "organs") == 1
    err = capsys.readouterr().err
    assert f"{home / 'nnunet' / 'results'}: TotalSegmentator weights missing for" in err
    assert all(name in err for name in TOTAL_WEIGHTS + GLANDS_WEIGHTS)
    make_weights(home / "nnunet" / "results", TOTAL_WEIGHTS + GLANDS_WEIGHTS)
    assert _organs(studies, tmp_path / "organs") == 0
    assert len(fake_ts.calls) == 2
    assert fake_ts.weights_paths == {str(home / "nnunet" / "results")}
