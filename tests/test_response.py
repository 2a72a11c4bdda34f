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
from lion_nnunet.analysis.response_sites import secondary_sum
from lion_nnunet.cli import main
from lion_nnunet.labels import get_label_set
from lion_nnunet.synthetic.phantom_case import organ_label_map, synthesize_case, to_image
from lion_nnunet.synthetic.phantom_followup import move_ct_labels, synthesize_followup
from lion_nnunet.synthetic.phantoms import make_cohort

LIVER = get_label_set("fdg").label_of("liver")
PATIENT = dict(weight_kg=72.0, height_cm=178.0, sex="M", followup_weight_kg=72.0)  # noqa: C408


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
    assert data["percist"]["baseline_measurable"]  # the phantom's hottest lesion is measurable
    assert data["percist"]["category"] == truth["expected_percist"].iloc[0] == "PMR"
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
    assert main([*args, *PATIENT_ARGS, "-o", str(out)]) == 0
    data = json.loads((out / "response.json").read_text())
    for key in ("percist", "reasons", "baseline", "followup", "delta", "alignment"):
        assert key in data
    for key in ("tmtv_ml", "tlg", "sul_peak", "liver_sul_mean", "liver_sul_sd", "lesions"):
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
    assert main([*args, *PATIENT_ARGS, "-o", str(out)]) == 1


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


PATIENT_ARGS = [
    "--weight-kg",
    "72",
    "--height-cm",
    "178",
    "--sex",
    "F",
    "--followup-weight-kg",
    "72",
]


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


def test_files_form_says_nothing_about_corrected_masks(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # corrections (tumor_corrected.nii.gz) belong to lion predict case folders; with the masks
    # given as files there is nothing to correct, so no line about them (nor --no-use-corrected,
    # which the user never passed)
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    assert main([*_args(b, f, tmp_path / "resp"), *PATIENT_ARGS]) == 0
    text = capsys.readouterr().out
    assert text.startswith("PERCIST ") and "corrected" not in text, text


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
                     "height_cm": 170, "sex": "M", "followup_weight_kg": 70})  # fmt: skip
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


def _empty_followup_mask(f: dict, remove_uptake: bool) -> None:
    """Empty the follow-up tumor mask; with ``remove_uptake`` the lesion also leaves the PET."""
    tumor = sitk.ReadImage(str(f["tumor"]))
    if remove_uptake:
        pet = sitk.ReadImage(str(f["SUV"]))
        arr = sitk.GetArrayFromImage(pet)
        arr[sitk.GetArrayFromImage(tumor) > 0] = 1.0  # the body's SUV
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(pet)
        sitk.WriteImage(out, str(f["SUV"]))
    empty = sitk.GetImageFromArray(np.zeros(tumor.GetSize()[::-1], np.uint8))
    empty.CopyInformation(tumor)
    sitk.WriteImage(empty, str(f["tumor"]))


def test_an_empty_followup_mask_over_unchanged_uptake_is_not_cmr(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # the case: the follow-up PET is the baseline's (lesion still at SUV 8) but its mask
    # is empty. The site measured on the follow-up PET reads the baseline's SULpeak: a change of
    # 0 %, so SMD, and the reasons say why it is not a complete response.
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    _empty_followup_mask(f, remove_uptake=False)
    out = tmp_path / "resp"
    assert main([*_args(b, f, out), *PATIENT_ARGS]) == 0
    data = json.loads((out / "response.json").read_text())
    assert data["followup"]["lesion_count"] == 0
    site = data["percist"]["sites"][0]["sul_peak"]
    assert site == data["baseline"]["sul_peak"] == data["percist"]["sul_peak_followup"]
    assert data["percist"]["category"] == "SMD"
    assert any("mask is empty, but this is not a complete response" in r for r in data["reasons"])
    (why,) = [r for r in data["reasons"] if "not a complete response" in r]
    assert "baseline lesion 1's site has SULpeak" in why
    assert f"{why}\n" in capsys.readouterr().out  # said on the console too, not only in the json
    # response.csv and the picture show the SULpeaks the category compared (the site's, 0 %
    # change), not an empty follow-up SULpeak beside "SMD"
    row = pd.read_csv(out / "response.csv").iloc[0]
    assert row["followup_sul_peak"] == pytest.approx(site) and row["delta_sul_peak_pct"] == 0.0
    from lion_nnunet.analysis.response_picture import panel_titles

    assert f"SULpeak (lesions and sites) {site:.2f}" in panel_titles(data)[1]


def test_an_empty_followup_mask_over_resolved_uptake_is_cmr(tmp_path: Path) -> None:
    # the lesion's voxels at the body's SUV 1 at follow-up: the site reads SUV 1 x the SUL factor.
    # Female, 72 kg, 178 cm: BMI 72 / 1.78^2 = 22.724; LBM 9270 x 72 / (8780 + 244 x 22.724)
    # = 46.59 kg; SUL factor 46.59 / 72 = 0.647: site 0.65 SUL < liver 2.0 x 0.647 = 1.29: CMR
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    _empty_followup_mask(f, remove_uptake=True)
    out = tmp_path / "resp"
    assert main([*_args(b, f, out), *PATIENT_ARGS]) == 0
    data = json.loads((out / "response.json").read_text())
    assert data["percist"]["sites"][0]["sul_peak"] == pytest.approx(0.65, abs=0.01)
    assert data["followup"]["liver_sul_mean"] == pytest.approx(1.29, abs=0.01)
    assert data["percist"]["category"] == "CMR"


def test_one_voxel_of_overlap_is_not_a_split() -> None:
    base = np.zeros((10, 10, 30), np.uint32)
    follow = np.zeros_like(base)
    base[2:6, 2:6, 2:6] = 1  # 64 voxels
    follow[2:6, 2:6, 2:6] = 1  # the same lesion
    follow[5:8, 5:8, 5:8] = 2  # 27 voxels, 1 voxel (5, 5, 5) shared with the baseline lesion
    follow[follow == 1] = 1
    follow[5, 5, 5] = 2
    # overlap of lesion 2 with baseline lesion 1: 1 voxel < 10 % of min(64, 27) = 2.7 voxels
    centres = np.array([[8.0, 8.0, 8.0]])
    far = np.array([[8.0, 8.0, 8.0], [40.0, 40.0, 40.0]])  # sphere centres, > 12.4 mm apart
    m = match_lesions(base, 1, follow, 2, centres, far)
    assert m.baseline[1] == ("matched", "one-to-one", [1])
    assert m.followup[2][0] == "new"


def _move_followup_lesion(f: dict, dy: int) -> None:
    """Move the follow-up lesion (mask and uptake) by ``dy`` voxels along y (4 mm each)."""
    tumor_img, pet_img = sitk.ReadImage(str(f["tumor"])), sitk.ReadImage(str(f["SUV"]))
    tumor, pet = sitk.GetArrayFromImage(tumor_img), sitk.GetArrayFromImage(pet_img)
    lesion = tumor > 0
    pet[lesion] = 1.0
    moved = np.roll(lesion, dy, axis=1)
    pet[moved] = 8.0
    for arr, ref, path in (
        (moved.astype(np.uint8), tumor_img, f["tumor"]),
        (pet, pet_img, f["SUV"]),
    ):
        img = sitk.GetImageFromArray(arr)
        img.CopyInformation(ref)
        sitk.WriteImage(img, str(path))


def test_a_new_hot_lesion_near_a_vanished_one_is_pmd(tmp_path: Path) -> None:
    # the case: the baseline lesion (SUV 8) vanishes and an equally hot lesion appears
    # 5 voxels x 4 mm = 20 mm away. Their SULpeak spheres (radius 6.20 mm) do not overlap
    # (20 > 12.41 mm), so the follow-up lesion is new: 27 voxels x 0.064 ml = 1.73 ml >= 0.5 ml,
    # SULpeak 8 x 0.647 = 5.18 >= liver 1.29 + 2 x 0 SD: PMD by the new-lesion rule (the old
    # centroid matcher paired them within 25 mm and said SMD)
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    _move_followup_lesion(f, 5)
    out = tmp_path / "resp"
    assert main([*_args(b, f, out), *PATIENT_ARGS]) == 0
    data = json.loads((out / "response.json").read_text())
    assert data["baseline"]["lesions"][0]["status"] == "disappeared"
    assert data["followup"]["lesions"][0]["status"] == "new"
    assert (data["percist"]["category"], data["percist"]["rule"]) == ("PMD", "new_lesions")
    trigger = data["percist"]["new_lesion_triggers"][0]
    assert trigger["id"] == 1 and trigger["volume_ml"] == pytest.approx(1.728)
    assert "lesion 1 (1.73 ml" in data["percist"]["reason"]


def _scale_followup_liver(f: dict, suv: float) -> None:
    pet_img = sitk.ReadImage(str(f["SUV"]))
    pet = sitk.GetArrayFromImage(pet_img)
    pet[sitk.GetArrayFromImage(sitk.ReadImage(str(f["organs"]))) == LIVER] = suv
    img = sitk.GetImageFromArray(pet)
    img.CopyInformation(pet_img)
    sitk.WriteImage(img, str(f["SUV"]))


def test_liver_drift_gives_ne_with_its_reason_unless_accepted(tmp_path: Path) -> None:
    # liver SUV 2.0 -> 2.5 with SUL factor 0.647 (see above): SUL 1.29 -> 1.62, +25.6 % and
    # +0.33 SUL: over both limits (20 %, 0.3 SUL), so NE; the lesion is unchanged
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    _scale_followup_liver(f, 2.5)
    out = tmp_path / "resp"
    assert main([*_args(b, f, out), *PATIENT_ARGS]) == 0
    data = json.loads((out / "response.json").read_text())
    assert (data["percist"]["category"], data["percist"]["rule"]) == ("NE", "not_comparable")
    assert "1.29 to 1.62 (+25.6 %, +0.33 SUL)" in data["percist"]["reason"]
    assert not data["percist"]["comparable"]
    args = [*_args(b, f, out), *PATIENT_ARGS, "--accept-noncomparable", "--overwrite"]
    assert main(args) == 0
    data = json.loads((out / "response.json").read_text())
    assert data["percist"]["category"] == "SMD" and data["percist"]["accept_noncomparable"]
    assert any("--accept-noncomparable" in w for w in data["warnings"])


def test_a_missing_followup_weight_or_distant_uptake_times_give_ne(tmp_path: Path) -> None:
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    out = tmp_path / "resp"
    assert main([*_args(b, f, out), *PATIENT_ARGS[:6]]) == 0  # no --followup-weight-kg
    data = json.loads((out / "response.json").read_text())
    assert data["percist"]["category"] == "NE" and "follow-up weight" in data["percist"]["reason"]
    # 60 and 76 min: 16 min apart (> 15)
    times = ["--baseline-uptake-min", "60", "--followup-uptake-min", "76", "--overwrite"]
    assert main([*_args(b, f, out), *PATIENT_ARGS, *times]) == 0
    data = json.loads((out / "response.json").read_text())
    assert data["percist"]["category"] == "NE" and "differ by 16 min" in data["percist"]["reason"]


def test_secondary_sum_five_hottest_at_most_two_per_organ() -> None:
    rows = [
        {"id": 1, "sul_peak": 9.0, "organ": "liver"}, {"id": 2, "sul_peak": 8.0, "organ": "liver"},
        {"id": 3, "sul_peak": 7.0, "organ": "liver"}, {"id": 4, "sul_peak": 6.0, "organ": "lung"},
        {"id": 5, "sul_peak": 5.0, "organ": None}, {"id": 6, "sul_peak": 4.0, "organ": None},
        {"id": 7, "sul_peak": 3.0, "organ": None},
    ]  # fmt: skip
    # threshold 3.5 drops lesion 7; the third liver lesion (7.0) is skipped: 9 + 8 + 6 + 5 + 4
    assert secondary_sum(rows, 3.5) == {"sul_peak_sum": 32.0, "lesions": [1, 2, 4, 5, 6]}
    # without a threshold still five at most: the same five
    assert secondary_sum(rows, None)["lesions"] == [1, 2, 4, 5, 6]


def _paint(paths: dict, box: tuple[slice, ...], suv: float) -> None:
    """Make ``box`` a lesion of SUV ``suv`` in a study written by ``_tiny``."""
    for name, value in (("tumor", 1), ("SUV", suv)):
        img = sitk.ReadImage(str(paths[name]))
        arr = sitk.GetArrayFromImage(img)
        arr[box] = value
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(img)
        sitk.WriteImage(out, str(paths[name]))


def test_a_rising_non_target_lesion_blocks_pmr(tmp_path: Path) -> None:
    # the case. Target (lesion 1) SUV 12 -> 6: SUL x 0.647 = 7.77 -> 3.88, -50 %;
    # non-target (lesion 2) SUV 3.6 -> 5.4: SUL 2.33 -> 3.49, +50 %, +1.16 SUL (>= 30 %, >= 0.8).
    # The follow-up's hottest is still the target (3.88 > 3.49): -50 %, which alone is PMR; the
    # non-target rise rules PMR out and its TLG (+50 %, same size) is below +75 %: SMD
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    target, other = np.s_[6:9, 6:9, 11:14], np.s_[12:15, 1:4, 11:14]
    for paths, t, o in ((b, 12.0, 3.6), (f, 6.0, 5.4)):
        _paint(paths, target, t)
        _paint(paths, other, o)
    out = tmp_path / "resp"
    assert main([*_args(b, f, out), *PATIENT_ARGS]) == 0
    data = json.loads((out / "response.json").read_text())
    assert data["percist"]["sul_peak_change_pct"] == pytest.approx(-50.0, abs=1.0)
    assert (data["percist"]["category"], data["percist"]["rule"]) == ("SMD", "smd_non_target_rise")
    assert data["percist"]["non_target_rises"] == [2]


def test_blood_pool_from_a_totalsegmentator_aorta_on_another_grid(tmp_path: Path) -> None:
    # the aorta (TotalSegmentator id 52, on a 2 mm grid) lies in the liver cube of the 4 mm
    # study: blood pool SUL = liver SUL = 2.0 x 0.647 = 1.29, SD 0. The lesion resolved (site
    # 0.65 SUL): 0.65 < 1.29 (liver) and <= 1.29 + 2 x 0 (blood pool): CMR, checked on both
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    _empty_followup_mask(f, remove_uptake=True)
    labels = np.zeros((32, 32, 32), np.uint8)
    labels[6:27, 8:17, 6:13] = 52  # 4 mm voxels z 3..13, y 4..8, x 3..6: inside the liver
    labels[28:, 28:, 28:] = 5
    img = sitk.GetImageFromArray(labels)
    img.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(img, str(tmp_path / "total.nii.gz"))
    out = tmp_path / "resp"
    aorta = ["--baseline-aorta", str(tmp_path / "total.nii.gz"),
             "--followup-aorta", str(tmp_path / "total.nii.gz")]  # fmt: skip
    assert main([*_args(b, f, out), *PATIENT_ARGS, *aorta]) == 0
    data = json.loads((out / "response.json").read_text())
    pool = data["followup"]["blood_pool"]
    assert pool["sul_mean"] == pytest.approx(1.29, abs=0.005) and pool["sul_sd"] == 0.0
    assert data["percist"]["category"] == "CMR"
    assert "at the blood pool (<= mean + 2 SD = 1.29)" in data["percist"]["reason"]
    assert any("middle of the aorta" in w for w in data["warnings"])  # one part per slice


@pytest.mark.parametrize(
    ("value", "extra", "message"),
    [
        ("1.7", [], "the SD is missing"),
        ("-1.7,0.2", [], "MEAN must be > 0 and SD >= 0"),
        ("1.7,-0.2", [], "MEAN must be > 0 and SD >= 0"),
        ("1.7,0.2", ["--liver-sd", "0.3"], "already has an SD"),
    ],
)
def test_liver_reference_needs_mean_and_sd_and_refuses_negatives(
    tmp_path: Path, capsys: pytest.CaptureFixture, value: str, extra: list, message: str
) -> None:
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    out = tmp_path / "resp"
    args = [*_args(b, f, out, organs=False), *PATIENT_ARGS, f"--liver-reference={value}", *extra]
    assert main(args) == 1
    assert message in capsys.readouterr().err and not out.exists()


def test_liver_reference_mean_with_liver_sd(tmp_path: Path) -> None:
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    out = tmp_path / "resp"
    args = [*_args(b, f, out, organs=False), *PATIENT_ARGS, "--liver-reference", "1.6"]
    assert main([*args, "--liver-sd", "0.2"]) == 0
    data = json.loads((out / "response.json").read_text())
    assert data["followup"]["liver_sul_mean"] == 1.6 and data["followup"]["liver_sul_sd"] == 0.2


def test_a_liver_mask_on_the_ct_grid_gives_the_liver_reference(tmp_path: Path) -> None:
    # TotalSegmentator's total map on a 2 mm grid with the liver (5) where the study's liver
    # cube is (4 mm voxels z 2..13, y 2..13, x 1..8 = 2 mm voxels z 4..27, y 4..27, x 2..17):
    # liver SUV 2.0 x SUL factor 0.647 = 1.29 at both time points
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    labels = np.zeros((32, 32, 32), np.uint8)
    labels[4:28, 4:28, 2:18] = 5
    labels[0:2, 0:2, 0:2] = 52  # another class: ignored
    img = sitk.GetImageFromArray(labels)
    img.SetSpacing((2.0, 2.0, 2.0))
    sitk.WriteImage(img, str(tmp_path / "total.nii.gz"))
    out = tmp_path / "resp"
    livers = ["--baseline-liver", str(tmp_path / "total.nii.gz"),
              "--followup-liver", str(tmp_path / "total.nii.gz")]  # fmt: skip
    assert main([*_args(b, f, out, organs=False), *PATIENT_ARGS, *livers]) == 0
    data = json.loads((out / "response.json").read_text())
    assert data["baseline"]["liver_sul_mean"] == pytest.approx(1.29, abs=0.005)
    assert data["baseline"]["liver_source"] == "liver mask"


def test_unknown_or_different_patients_need_same_patient(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_bbbbbbbbbb", "03-02-2006-NA-PET-CT")
    out = tmp_path / "resp"
    assert main([*_args(b, f, out), *PATIENT_ARGS]) == 1
    assert "--same-patient" in capsys.readouterr().err and not out.exists()
    assert main([*_args(b, f, out), *PATIENT_ARGS, "--same-patient"]) == 0
    # a PET whose path names no patient cannot be checked: refused without --same-patient
    unknown = tmp_path / "x" / "pet.nii.gz"
    unknown.parent.mkdir()
    unknown.write_bytes(Path(f["SUV"]).read_bytes())
    args = _args(b, {**f, "SUV": unknown}, tmp_path / "resp2")
    assert main([*args, *PATIENT_ARGS]) == 1
    assert "cannot be read from the path" in capsys.readouterr().err


def test_prediction_folders_from_any_directory_carry_predict_warnings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # report.json keeps the input path relative to where lion predict ran (tmp_path)
    _pairs_csv(tmp_path, {"PETCT_aaaaaaaaaa": {}})
    folders = sorted((tmp_path / "pred").iterdir())
    for folder in folders:
        report = json.loads((folder / "report.json").read_text())
        report["input"] = str(Path(report["input"]).relative_to(tmp_path))
        report["flag_reasons"] = ["3.0 ml of tumor touches the urinary bladder"]
        (folder / "report.json").write_text(json.dumps(report))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    out = tmp_path / "resp"
    assert main(["response", *map(str, folders), *PATIENT_ARGS, "-o", str(out)]) == 0
    data = json.loads((out / "response.json").read_text())
    assert Path(data["baseline"]["pet"]).is_absolute()
    notes = [w for w in data["warnings"] if "urinary bladder" in w]
    assert len(notes) == 2 and notes[0].startswith("baseline prediction (lion predict): 3.0 ml")


def test_pairs_csv_followup_columns_and_a_crash_never_stop_the_cohort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _pairs_csv(tmp_path, {"PETCT_aaaaaaaaaa": {}, "PETCT_cccccccccc": {},
                                 "PETCT_eeeeeeeeee": {}})  # fmt: skip
    table = pd.DataFrame(rows)
    table["baseline_uptake_min"] = [60, 60, 60]
    table["followup_uptake_min"] = [70, 80, 70]  # the second: 20 min apart -> NE
    table.to_csv(tmp_path / "pairs.csv", index=False)
    from lion_nnunet.analysis import response

    real = response.assess_response

    def crash_on_e(baseline, followup, options):
        if options.patient_id == "PETCT_eeeeeeeeee":
            raise ZeroDivisionError("a bug")
        return real(baseline, followup, options)

    monkeypatch.setattr(response, "assess_response", crash_on_e)
    out = tmp_path / "cohort"
    args = ["response", "--pairs", str(tmp_path / "pairs.csv"), "-o", str(out), "--no-pbar"]
    assert main(args) == 1
    result = pd.read_csv(out / "response.csv").set_index("patient_id")
    assert result.loc["PETCT_aaaaaaaaaa", "percist"] == "SMD"  # unchanged lesion, comparable
    assert result.loc["PETCT_cccccccccc", "percist"] == "NE"
    assert result.loc["PETCT_eeeeeeeeee", "status"] == "failed"
    assert result.loc["PETCT_eeeeeeeeee", "error"] == "unexpected ZeroDivisionError: a bug"


def test_a_peak_sphere_reaching_a_hot_organ_is_flagged(tmp_path: Path) -> None:
    # the bladder (FDG id) right next to the lesion (x 14, the lesion ends at x 13): the 1 ml
    # sphere around any lesion voxel reaches 6.2 mm, more than the 4 mm to the bladder's voxels
    bladder = get_label_set("fdg").label_of("urinary_bladder")
    b = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "08-12-2005-NA-PET-CT")
    f = _tiny(tmp_path, "PETCT_aaaaaaaaaa", "03-02-2006-NA-PET-CT")
    img = sitk.ReadImage(str(b["organs"]))
    organs = sitk.GetArrayFromImage(img)
    organs[6:9, 6:9, 14] = bladder
    out_img = sitk.GetImageFromArray(organs)
    out_img.CopyInformation(img)
    sitk.WriteImage(out_img, str(b["organs"]))
    out = tmp_path / "resp"
    assert main([*_args(b, f, out), *PATIENT_ARGS]) == 0
    data = json.loads((out / "response.json").read_text())
    assert data["baseline"]["lesions"][0]["peak_sphere_reaches"] == "urinary_bladder"
    assert data["followup"]["lesions"][0]["peak_sphere_reaches"] is None
    assert any(w.startswith("lesion b1: its SULpeak sphere reaches") for w in data["warnings"])


def test_complete_response_phantom_is_measured_at_every_site(phantom_pair) -> None:
    # follow-up 3 of patient 2 is the "complete" scenario: every lesion vanishes (the PET keeps
    # only the background and organs, with fresh noise, after a shift of centimetres). Every site
    # inside the follow-up image reads background, but the shift takes one lesion's place out of
    # the follow-up's field of view (checked with the phantom's own motion, not the
    # registration): its site cannot be measured, so a complete response cannot be confirmed,
    # and the target's fall (to background) makes it PMR
    base = phantom_pair["base"]
    follow, truth, motion = synthesize_followup(base, 3, 0)
    truth = pd.DataFrame(truth)
    assert set(truth["change"]) == {"vanish"}
    organs = move_ct_labels(phantom_pair["liver"], base.pet_grid, motion)
    result = assess_response(
        _study(base, phantom_pair["liver"], "b"), _study(follow, organs, "f"),
        ResponseOptions(**PATIENT),
    )  # fmt: skip
    data = result.data
    image = to_image(follow.suv, follow.pet_grid)
    size = np.array(image.GetSize())
    outside = set()
    for _, row in truth.iterrows():
        index = np.array(image.TransformPhysicalPointToContinuousIndex(
            tuple(float(v) for v in motion.follow(_centre(row, "baseline")))))  # fmt: skip
        if not ((index > -0.5) & (index < size - 0.5)).all():
            outside.add(_nearest(data["baseline"]["lesions"], _centre(row, "baseline"))["id"])
    sites = {s["lesion"]: s for s in data["percist"]["sites"]}
    assert data["followup"]["lesion_count"] == 0 and len(sites) == len(truth)
    assert outside == {k for k, s in sites.items() if s["sul_peak"] is None} and outside
    mean, sd = data["followup"]["liver_sul_mean"], data["followup"]["liver_sul_sd"]
    for k, s in sites.items():
        if k not in outside:  # background: below the liver mean (in the liver: mean + 2 SD)
            assert s["sul_peak"] <= mean + 2 * sd if s["in_liver"] else s["sul_peak"] < mean
    assert data["percist"]["category"] == "PMR"
    assert any("lies outside the follow-up image" in r for r in data["reasons"])


def _liver_lesion(tmp_path: Path, study: str, vanished: bool) -> dict:
    """A 16^3 study at 4 mm: body SUV 1, a liver cube at SUV 2 with a lesion inside it (SUV 8),
    or, ``vanished``, the lesion's voxels back at the liver's SUV 2 and an empty tumor mask."""
    suv = np.ones((16, 16, 16), np.float32)
    liver = np.zeros(suv.shape, np.uint8)
    liver[2:14, 2:14, 1:9] = 1
    suv[liver > 0] = 2.0
    tumor = np.zeros(suv.shape, np.uint8)
    if not vanished:
        tumor[6:9, 6:9, 3:6] = 1  # x 3-5: the 1 ml sphere (radius 6.2 mm) stays in the liver
        suv[tumor > 0] = 8.0
    folder = tmp_path / "PETCT_aaaaaaaaaa" / study
    folder.mkdir(parents=True)
    paths = {}
    for name, arr in (("SUV", suv), ("tumor", tumor), ("liver", liver)):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((4.0, 4.0, 4.0))
        paths[name] = folder / f"{name}.nii.gz"
        sitk.WriteImage(img, str(paths[name]))
    return paths


def test_liver_reference_without_a_followup_liver_mask_warns_that_cmr_is_out_of_reach(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A lesion gone from the liver: its site reads the liver, SUV 2 x SUL factor 0.647 (female,
    72 kg, 178 cm, as above) = 1.29 SUL, not below the given liver mean 1.25. Without a follow-up
    liver mask nothing says the site lies in the liver, so it is not CMR, and a warning names the
    fix; with --followup-liver the site is held to liver mean + 2 SD = 1.25 + 0.2 = 1.45: CMR."""
    b = _liver_lesion(tmp_path, "08-12-2005-NA-PET-CT", vanished=False)
    f = _liver_lesion(tmp_path, "03-02-2006-NA-PET-CT", vanished=True)
    args = [*_args(b, f, tmp_path / "resp", organs=False), *PATIENT_ARGS,
            "--liver-reference", "1.25,0.1"]  # fmt: skip
    assert main(args) == 0
    data = json.loads((tmp_path / "resp" / "response.json").read_text())
    assert data["percist"]["sites"][0]["sul_peak"] == pytest.approx(1.29, abs=0.01)
    assert data["percist"]["category"] != "CMR"
    (warning,) = [w for w in data["warnings"] if "--followup-liver MASK" in w]
    assert "baseline lesion(s) 1 (SULpeak 1.29)" in warning and "liver mean 1.25" in warning
    assert f"warning: {warning}\n" in capsys.readouterr().out
    fixed = ["--followup-liver", str(f["liver"]), "-o", str(tmp_path / "fixed")]  # last -o wins
    assert main([*args, *fixed]) == 0
    data = json.loads((tmp_path / "fixed" / "response.json").read_text())
    assert data["percist"]["category"] == "CMR" and data["percist"]["sites"][0]["in_liver"]
    assert not any("--followup-liver" in w for w in data["warnings"])
