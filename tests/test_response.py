"""`lion response`: lesion matching against phantom truth after a patient shift, CLI, bad input.

The phantom follow-ups move the patient by several centimetres and change lesions in known ways
(lion_nnunet.synthetic.phantom_followup); the truth rows say which baseline lesion became which
follow-up lesion, so matching is checked against them, never against the code under test.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from lion_nnunet.analysis import cli_response, response_cohort
from lion_nnunet.analysis.response import ResponseOptions, Study, assess_response
from lion_nnunet.analysis.response_match import match_lesions
from lion_nnunet.cli import main
from lion_nnunet.labels import get_label_set
from lion_nnunet.synthetic.phantom_case import organ_label_map, synthesize_case, to_image
from lion_nnunet.synthetic.phantom_followup import move_ct_labels, synthesize_followup
from lion_nnunet.synthetic.phantoms import make_cohort

LIVER = get_label_set("fdg").label_of("liver")
PATIENT = dict(weight_kg=72.0, height_cm=178.0, sex="M")  # noqa: C408


@pytest.fixture(scope="module")
def phantom_pair():
    """Patient 2 (melanoma): baseline, follow-up 1 (response: vanish, split, shrink) and
    follow-up 2 (progression: grow and a new lesion), with organ maps and truth rows."""
    base = synthesize_case("fdg", 2, 0, "small", "melanoma")
    liver = organ_label_map(base.pet_grid, base.anatomy, ["liver"]) * LIVER
    out = {"base": base, "liver": liver.astype(np.uint8)}
    for k in (1, 2):
        follow, truth, motion = synthesize_followup(base, k, 0)
        out[k] = (follow, truth, move_ct_labels(out["liver"], base.pet_grid, motion), motion)
    return out


def _study(case, organs, name: str) -> Study:
    image = to_image(case.suv, case.pet_grid)
    return Study(name, image, case.suv, case.seg > 0, organs.astype(np.int16), case.patient_id)


def _nearest(lesions: list[dict], centre) -> dict:
    centre = np.asarray(centre, float)
    dist = [np.linalg.norm(np.asarray(r["centroid_mm"]) - centre) for r in lesions]
    assert min(dist) < 6.0, f"no lesion within one voxel of the truth centre {centre}"
    return lesions[int(np.argmin(dist))]


def _centre(row: pd.Series, when: str) -> list[float]:
    return [row[f"{when}_{a}_mm"] for a in "xyz"]


def test_matching_follows_the_truth_after_a_shift_of_centimetres(phantom_pair) -> None:
    base = phantom_pair["base"]
    follow, truth, organs, motion = phantom_pair[1]
    truth = pd.DataFrame(truth)
    assert np.linalg.norm(motion.shift_mm) >= 40.0  # several centimetres
    assert {"vanish", "split", "shrink"} <= set(truth["change"])  # the changes under test
    result = assess_response(
        _study(base, phantom_pair["liver"], "b"), _study(follow, organs, "f"),
        ResponseOptions(**PATIENT),
    )  # fmt: skip
    data = result.data
    b_lesions, f_lesions = data["baseline"]["lesions"], data["followup"]["lesions"]
    assert len(b_lesions) == truth["baseline_lesion"].replace("", np.nan).dropna().nunique()
    assert len(f_lesions) == (truth["followup_lesion"] != "").sum()
    for _, row in truth.iterrows():
        b = _nearest(b_lesions, _centre(row, "baseline"))
        if row["change"] == "vanish":
            assert b["status"] == "disappeared"
            continue
        f = _nearest(f_lesions, _centre(row, "followup"))
        assert b["status"] == f["status"] == "matched"
        assert f["id"] in b["matched_to"] and b["id"] in f["matched_to"]
        assert b["change"] == ("split" if row["change"] == "split" else "one-to-one")
    assert data["matching"]["splits"] == 1 and data["matching"]["new"] == 0
    # the design: every lesion at least 40% cooler -> PMR when the baseline is measurable
    expected = truth["expected_percist"].iloc[0]
    assert data["percist"]["category"] == (
        expected if data["percist"]["baseline_measurable"] else "NE"
    )
    assert data["alignment"]["ncc_after"] > data["alignment"]["ncc_before"]


def _write(image_array, grid, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(to_image(image_array, grid), str(path))
    return path


def test_cli_new_lesion_outputs_and_schema(phantom_pair, tmp_path: Path) -> None:
    base = phantom_pair["base"]
    follow, truth, organs, _ = phantom_pair[2]
    root = tmp_path / "PETCT_0af7ffe12a"
    name = "NA-PET-CT Ganzkoerper  primaer mit KM"
    studies = {
        "baseline": (base, phantom_pair["liver"], f"08-12-2005-{name}-10445"),
        "followup": (follow, organs, f"03-02-2006-{name}-61231"),
    }
    args = ["response"]
    for when, (case, org, study) in studies.items():
        pred = tmp_path / "pred" / when
        args += [
            f"--{when}-pet", str(_write(case.suv, case.pet_grid, root / study / "SUV.nii.gz")),
            f"--{when}-tumor", str(_write(case.seg, case.pet_grid, pred / "tumor.nii.gz")),
            f"--{when}-organs", str(_write(org, case.pet_grid, pred / "organs.nii.gz")),
        ]  # fmt: skip
    out = tmp_path / "resp"
    assert (
        main([*args, "--weight-kg", "72", "--height-cm", "178", "--sex", "M", "-o", str(out)]) == 0
    )
    data = json.loads((out / "response.json").read_text())
    for key in ("percist", "reasons", "baseline", "followup", "delta", "alignment"):
        assert key in data
    for key in ("tmtv_ml", "tlg_ml", "sul_peak", "liver_sul_mean", "liver_sul_sd", "lesions"):
        assert key in data["baseline"] and key in data["followup"]
    assert data["patient_id"] == "PETCT_0af7ffe12a"
    appear = pd.DataFrame(truth).query("change == 'appear'").iloc[0]
    new = _nearest(data["followup"]["lesions"], _centre(appear, "followup"))
    assert new["status"] == "new"
    assert data["percist"]["category"] == "PMD" and data["percist"]["rule"] == "new_lesions"
    assert data["reasons"][0].startswith("PERCIST PMD")
    table = pd.read_csv(out / "response.csv")
    assert len(table) == 1 and table["percist"].iloc[0] == "PMD"
    png = out / "response.png"
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert (
        main([*args, "--weight-kg", "72", "--height-cm", "178", "--sex", "M", "-o", str(out)]) == 1
    )


def test_match_lesions_overlap_split_distance_new_and_gone() -> None:
    base = np.zeros((10, 10, 40), np.uint32)
    follow = np.zeros_like(base)
    base[2:4, 2:4, 2:4] = 1  # A: overlaps A'
    follow[3:5, 3:5, 3:5] = 1
    base[2:4, 2:4, 10:16] = 2  # B: splits into two follow-up pieces
    follow[2:4, 2:4, 10:12] = 2
    follow[2:4, 2:4, 14:16] = 3
    base[6:8, 6:8, 20:22] = 3  # C: no overlap, centroid 10 mm away -> matched by distance
    follow[6:8, 6:8, 25:27] = 4  # D... no: this is C' (5 voxels * 2 mm = 10 mm)
    base[6:8, 6:8, 36:38] = 4  # E: nothing near -> disappeared
    follow[2:4, 6:8, 30:32] = 5  # F: new, > 25 mm from E? no: checked below
    spacing = 2.0

    def centres(labels, n):
        return np.array([np.argwhere(labels == i).mean(0)[::-1] * spacing for i in range(1, n + 1)])

    m = match_lesions(base, 4, follow, 5, centres(base, 4), centres(follow, 5), max_distance_mm=8.0)
    assert m.baseline[1] == ("matched", "one-to-one", [1])
    assert m.baseline[2] == ("matched", "split", [2, 3])
    assert m.followup[2][:2] == m.followup[3][:2] == ("matched", "split")
    assert m.baseline[3][0] == "disappeared"  # 10 mm > 8 mm: not matched
    m = match_lesions(
        base, 4, follow, 5, centres(base, 4), centres(follow, 5), max_distance_mm=12.0
    )
    assert m.baseline[3] == ("matched", "one-to-one", [4]) and m.how[(3, 4)] == "distance"
    assert m.baseline[4][0] == "disappeared"
    assert m.followup[5][0] == "new"


# -- bad input: one sentence, exit 1, nothing written ------------------------------------------


def _tiny(tmp_path: Path, patient: str, study: str, scale: float = 1.0, lesion_shift: int = 0):
    """A 16^3 study at 4 mm: body SUV 1, a liver cube (LION id), one hot lesion."""
    suv = np.ones((16, 16, 16), np.float32)
    organs = np.zeros(suv.shape, np.uint8)
    organs[2:14, 2:14, 1:9] = LIVER
    suv[organs > 0] = 2.0
    tumor = np.zeros(suv.shape, np.uint8)
    tumor[6:9, 6:9, 11 + lesion_shift : 14 + lesion_shift] = 1
    suv[tumor > 0] = 8.0
    folder = tmp_path / patient / study
    folder.mkdir(parents=True)
    paths = {}
    for name, arr in (("SUV", suv * scale), ("tumor", tumor), ("organs", organs)):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((4.0, 4.0, 4.0))
        paths[name] = folder / f"{name}.nii.gz"
        sitk.WriteImage(img, str(paths[name]))
    return paths


def _args(b: dict, f: dict, out: Path, organs: bool = True) -> list[str]:
    args = ["response"]
    for when, p in (("baseline", b), ("followup", f)):
        args += [f"--{when}-pet", str(p["SUV"]), f"--{when}-tumor", str(p["tumor"])]
        if organs:
            args += [f"--{when}-organs", str(p["organs"])]
    return [*args, "-o", str(out)]


PATIENT_ARGS = ["--weight-kg", "72", "--height-cm", "178", "--sex", "F"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("two_patients", "patient PETCT_bbbbbbbbbb"),
        ("no_liver", "--liver-reference"),
        ("no_weight", "--weight-kg"),
        ("no_sex", "--sex"),
        ("not_suv", "not SUV"),
    ],
)
def test_bad_input_one_sentence_exit_1_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture, case: str, message: str
) -> None:
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    patient = "PETCT_bbbbbbbbbb" if case == "two_patients" else "PETCT_aaaaaaaaaa"
    f = _tiny(tmp_path, patient, "03-02-2006-NA-PET-CT", scale=5000.0 if case == "not_suv" else 1)
    out = tmp_path / "resp"
    args = _args(b, f, out, organs=case != "no_liver")
    extra = {
        "no_weight": ["--height-cm", "178", "--sex", "F"],
        "no_sex": ["--weight-kg", "72", "--height-cm", "178"],
    }.get(case, PATIENT_ARGS)
    assert main([*args, *extra]) == 1
    errors = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("lion ")]
    assert len(errors) == 1 and message in errors[0]  # one sentence on one line (warnings apart)
    assert not out.exists()


def test_liver_reference_flag_replaces_the_mask(tmp_path: Path) -> None:
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT", lesion_shift=1)
    out = tmp_path / "resp"
    args = _args(b, f, out, organs=False)
    assert main([*args, *PATIENT_ARGS, "--liver-reference", "1.6,0.2", "--json"]) == 0
    data = json.loads((out / "response.json").read_text())
    assert data["baseline"]["liver_sul_mean"] == 1.6 and data["followup"]["liver_sul_sd"] == 0.2
    assert data["baseline"]["liver_source"] == "--liver-reference"


def _pairs_csv(tmp_path: Path, followups: dict[str, dict]) -> list[dict]:
    """pairs.csv of lion-predict-like folders: per patient a baseline and one follow-up study.

    ``followups``: patient -> keyword arguments of ``_tiny`` for the follow-up study.
    """
    rows = []
    for patient, followup in followups.items():
        for study, kw in (("08-12-2005-NA-PET-CT", {}), ("03-02-2006-NA-PET-CT", followup)):
            paths = _tiny(tmp_path / "studies", patient, study, **kw)
            pred = tmp_path / "pred" / f"{patient}_{study}"
            pred.mkdir(parents=True)
            for name in ("tumor", "organs"):
                paths[name].rename(pred / f"{name}.nii.gz")
            (pred / "report.json").write_text(json.dumps({"input": str(paths["SUV"])}))
        rows.append({"patient_id": patient, "baseline": f"pred/{patient}_08-12-2005-NA-PET-CT",
                     "followup": f"pred/{patient}_03-02-2006-NA-PET-CT", "weight_kg": 70,
                     "height_cm": 170, "sex": "M"})  # fmt: skip
    pd.DataFrame(rows).to_csv(tmp_path / "pairs.csv", index=False)
    return rows


def test_pairs_cohort_of_prediction_folders(tmp_path: Path) -> None:
    rows = _pairs_csv(tmp_path, {"PETCT_aaaaaaaaaa": {}, "PETCT_cccccccccc": {"lesion_shift": 1}})
    out = tmp_path / "cohort"
    assert (
        main(["response", "--pairs", str(tmp_path / "pairs.csv"), "-o", str(out), "--no-pbar"]) == 0
    )
    table = pd.read_csv(out / "response.csv")
    assert len(table) == 2 and list(table["patient_id"]) == [r["patient_id"] for r in rows]
    assert (table["baseline_lesions"] == 1).all() and (table["followup_lesions"] == 1).all()
    assert (table["new_lesions"] == 0).all()  # the lesion moved by one voxel: still matched
    for r in rows:
        assert (out / r["patient_id"] / Path(r["followup"]).name / "response.png").is_file()
    assert cli_response.PAIR_COLUMNS == response_cohort.PAIR_COLUMNS


def test_a_failing_pair_is_recorded_and_the_cohort_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rows = _pairs_csv(tmp_path, {"PETCT_aaaaaaaaaa": {}, "PETCT_dddddddddd": {"scale": 1000.0}})
    out = tmp_path / "cohort"
    # the second patient's follow-up is in Bq/ml-like units (body 1000): refused, the first goes on
    assert main(["response", "--pairs", str(tmp_path / "pairs.csv"), "-o", str(out),
                 "--no-pbar"]) == 1  # fmt: skip
    said, err = capsys.readouterr()
    assert re.search(r"wrote 1 responses to .*; PERCIST: 1 [A-Z]+; see ", said)  # no dict
    assert "1 pair(s) failed: PETCT_dddddddddd (PETCT_dddddddddd_03-02-2006-NA-PET-CT)" in err
    table = pd.read_csv(out / "response.csv").set_index("patient_id")
    assert table.loc["PETCT_aaaaaaaaaa", "status"] == "ok"
    assert table.loc["PETCT_aaaaaaaaaa", "followup_lesions"] == 1
    assert table.loc["PETCT_dddddddddd", "status"] == "failed"
    assert "SUV" in table.loc["PETCT_dddddddddd", "error"]
    written = [(out / r["patient_id"] / Path(r["followup"]).name / "response.json") for r in rows]
    assert written[0].is_file() and not written[1].exists()


def test_from_cases_on_a_converted_phantom_cohort(tmp_path: Path, nnunet_dirs) -> None:
    make_cohort(tmp_path / "synth", "fdg", 1, diseases=["melanoma"], followups=1, progress=False)
    assert main(["convert", "autopet", "--input", str(tmp_path / "synth/studies"), "--organs",
                 str(tmp_path / "synth/organs"), "--tracer", "fdg", "--dataset-id", "977",
                 "--name", "RESP", "--no-pbar", "-np", "1"]) == 0  # fmt: skip
    raw = nnunet_dirs["nnUNet_raw"] / "Dataset977_RESP"
    cases = pd.read_csv(raw / "lion_cases.csv")
    assert len(cases) == 2 and cases["patient_id"].nunique() == 1
    # lion predict's case folders, made from the converted labels (tumor 1, organs 2..K)
    for case in cases["case_id"]:
        folder = tmp_path / "pred" / case
        folder.mkdir(parents=True)
        label = sitk.ReadImage(str(raw / "labelsTr" / f"{case}.nii.gz"))
        arr = sitk.GetArrayFromImage(label)
        for name, part in (("tumor", arr == 1), ("organs", np.where(arr > 1, arr, 0))):
            img = sitk.GetImageFromArray(part.astype(np.uint8))
            img.CopyInformation(label)
            sitk.WriteImage(img, str(folder / f"{name}.nii.gz"))
        pet = raw / "imagesTr" / f"{case}_0000.nii.gz"
        (folder / "report.json").write_text(json.dumps({"input": str(pet)}))
    pd.DataFrame([{"patient_id": "SYNFDG_0000", "weight_kg": 80, "height_cm": 181, "sex": "M"}]
                 ).to_csv(tmp_path / "patients.csv", index=False)  # fmt: skip
    out = tmp_path / "cohort"
    args = [
        "response",
        "--from-cases",
        str(raw / "lion_cases.csv"),
        "--predictions-dir",
        str(tmp_path / "pred"),
        "--patients",
        str(tmp_path / "patients.csv"),
        "-o",
        str(out),
    ]
    assert main([*args, "--no-pbar"]) == 0
    table = pd.read_csv(out / "response.csv")
    truth = pd.read_csv(tmp_path / "synth/followups.csv")
    assert len(table) == 1 and not truth.empty
    assert table["percist"].iloc[0] == truth["expected_percist"].iloc[0] == "PMD"  # progression
    assert table["new_lesions"].iloc[0] == (truth["change"] == "appear").sum() == 1
    pairs = pd.read_csv(out / "pairs.csv")
    assert pairs["baseline"].iloc[0].endswith("study_01")
    assert pairs["followup"].iloc[0].endswith("study_02")
