"""`lion evaluate`: folders, missing predictions, grids, grouping, outputs."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main


def _write(arr: np.ndarray, path: Path, spacing=(2.0, 2.0, 2.0), origin=(0.0, 0.0, 0.0)) -> None:
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    for i, case in enumerate(("a", "b", "c")):
        gt = np.zeros((10, 10, 10), np.uint8)
        gt[2:5, 2:5, 2:5] = 1
        gt[6:9, 6:9, 6:9] = 3  # an organ class: ignored
        _write(gt, tmp_path / "gt" / f"{case}.nii.gz")
        pred = np.where(gt == 1, 1, 0) if i == 0 else np.zeros_like(gt)
        if case == "a":  # lion predict layout
            _write(pred, tmp_path / "pred" / case / "tumor.nii.gz")
        elif case == "b":  # flat layout with an organ class predicted too
            _write(pred + (gt == 3) * 3, tmp_path / "pred" / f"{case}.nii.gz")
    pd.DataFrame(
        {"case_id": ["a", "b", "c"], "disease": ["lymphoma", "melanoma", "lymphoma"]}
    ).to_csv(tmp_path / "cases.csv", index=False)
    return tmp_path


def test_evaluate_outputs_and_missing_cases(folders: Path, capsys) -> None:
    out = folders / "eval"
    args = ["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt"),
            "--cases", str(folders / "cases.csv"), "--group-by", "disease", "-o", str(out),
            "--no-pbar", "-np", "1"]  # fmt: skip
    assert main(args) == 1  # c has no prediction: refused by default, nothing written
    assert "no prediction for 1 of 3 ground-truth case(s)" in capsys.readouterr().err
    assert not out.exists()
    assert main([*args, "--allow-missing"]) == 0
    per_case = pd.read_csv(out / "per_case.csv").set_index("case_id")
    assert per_case.loc["a", "dice"] == 1.0 and per_case.loc["b", "dice"] == 0.0
    assert per_case.loc["b", "fp_volume_ml"] == 0.0  # organ class 3 is not tumor
    assert per_case.loc["c", "status"] == "missing"  # listed, not dropped
    summary = pd.read_csv(out / "summary.csv")
    overall = summary[summary.grouping == "all"].iloc[0]
    assert (overall.cases, overall.evaluated, overall.missing) == (3, 2, 1)
    assert set(summary[summary.grouping == "disease"].group) == {"lymphoma", "melanoma"}
    data = json.loads((out / "summary.json").read_text())
    assert data["missing_predictions"] == ["c"]
    assert "2 of 3 case(s) evaluated (1 without prediction)" in capsys.readouterr().out
    assert main(["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt"),
                 "-o", str(out)]) == 1  # fmt: skip
    assert "use --overwrite" in capsys.readouterr().err


def test_grid_mismatch_resampled_or_refused(folders: Path, capsys) -> None:
    gt = sitk.GetArrayFromImage(sitk.ReadImage(str(folders / "gt" / "b.nii.gz")))
    _write(gt == 1, folders / "pred" / "b.nii.gz", origin=(0.5, 0.0, 0.0))
    out = folders / "eval"
    args = ["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt"),
            "-o", str(out), "--no-pbar", "-np", "1", "--overwrite", "--allow-missing"]  # fmt: skip
    assert main(args) == 0
    per_case = pd.read_csv(out / "per_case.csv").set_index("case_id")
    assert per_case.loc["b", "status"] == "resampled" and per_case.loc["b", "dice"] > 0.5
    assert main([*args, "--strict"]) == 1
    assert "origin" in capsys.readouterr().err


def test_grouping_column_must_exist(folders: Path, capsys) -> None:
    assert main(["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt"),
                 "--cases", str(folders / "cases.csv"), "--group-by", "center", "-o",
                 str(folders / "e")]) == 1  # fmt: skip
    assert "no column(s) center to group by" in capsys.readouterr().err


def test_pet_columns_in_suv(folders: Path, capsys) -> None:
    pet_dir = folders / "pet"
    pet_dir.mkdir()
    for case in ("a", "b", "c"):
        suv = np.ones((10, 10, 10), np.float32)
        suv[2:5, 2:5, 2:5] = 4.0
        suv[3, 3, 3] = 9.0
        img = sitk.GetImageFromArray(suv)
        img.SetSpacing((2.0, 2.0, 2.0))
        sitk.WriteImage(img, str(pet_dir / f"{case}_0000.nii.gz"))
    out = folders / "eval"
    args = ["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt"),
            "--pet", str(pet_dir), "-o", str(out), "--no-pbar", "--allow-missing"]  # fmt: skip
    assert main(args) == 0
    per_case = pd.read_csv(out / "per_case.csv").set_index("case_id")
    tlg = (26 * 4.0 + 9.0) * 0.008  # SUV x ml of the 27-voxel lesion
    assert per_case.loc["a", "gt_suv_max"] == 9.0
    assert per_case.loc["a", "gt_tlg"] == pytest.approx(tlg)
    assert per_case.loc["a", "tlg_error"] == pytest.approx(0.0)
    assert per_case.loc["b", "tlg_error"] == pytest.approx(-tlg)  # nothing predicted
    text = (out / "per_case.csv").read_text()  # rounded, counts as integers (not 2.0)
    assert not re.search(r"\d\.\d{5,}", text), text
    assert per_case["lesions_gt"].dropna().tolist() == [1, 1]
    rows = list(csv.DictReader(text.splitlines()))
    assert [r["lesions_tp"] for r in rows] == ["1", "0", ""], text
    summary = pd.read_csv(out / "summary.csv")
    assert summary.loc[0, "gt_tlg_median"] == pytest.approx(tlg)
    (pet_dir / "c_0000.nii.gz").unlink()
    assert main([*args, "--overwrite"]) == 1
    assert "no PET for case c" in capsys.readouterr().err


def test_cases_csv_needs_case_id(folders: Path, capsys) -> None:
    pd.DataFrame({"patient": ["a"], "disease": ["x"]}).to_csv(folders / "bad.csv", index=False)
    assert main(["evaluate", "--pred", str(folders / "pred"), "--gt", str(folders / "gt"),
                 "--cases", str(folders / "bad.csv"), "--group-by", "disease", "-o",
                 str(folders / "e")]) == 1  # fmt: skip
    assert "no case_id column" in capsys.readouterr().err


def _autopet_cohort(root: Path, predicted: int) -> tuple[Path, Path, list[str]]:
    """12 autoPET-named studies (two per patient) with ground truth; ``predicted`` of them done."""
    gt, pred = root / "labelsTs", root / "pred"
    cases = [f"PETCT_{p}_{s}" for p in ("0af7ffe12a", "02ba4b4d6b", "0307a2d7c0", "1a2b3c4d5e",
                                        "2b3c4d5e6f", "3c4d5e6f70") for s in (0, 1)]  # fmt: skip
    mask = np.zeros((10, 10, 10), np.uint8)
    mask[2:5, 2:5, 2:5] = 1
    for k, case in enumerate(cases):
        _write(mask, gt / f"{case}.nii.gz")
        if k < predicted:
            _write(mask, pred / case / "tumor.nii.gz")
    return gt, pred, cases


def test_two_of_twelve_predicted_is_refused_listing_the_ten_missing(tmp_path: Path, capsys) -> None:
    gt, pred, cases = _autopet_cohort(tmp_path, predicted=2)
    assert len(list(pred.iterdir())) == 2
    out = tmp_path / "eval"
    args = ["evaluate", "--pred", str(pred), "--gt", str(gt), "-o", str(out), "--no-pbar"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "no prediction for 10 of 12 ground-truth case(s)" in err and "--allow-missing" in err
    listed = err.split(": ")[-1].split(";")[0].split(", ")
    assert listed == cases[2:]  # all ten, in order, and not the two predicted ones
    assert not out.exists()
    assert main([*args, "--allow-missing"]) == 0
    assert "2 of 12 case(s) evaluated (10 without prediction)" in capsys.readouterr().out
    per_case = pd.read_csv(out / "per_case.csv")
    assert sorted(per_case.loc[per_case.status == "missing", "case_id"]) == cases[2:]


def test_summary_rounded_as_per_case(tmp_path: Path) -> None:
    """summary.csv and summary.json carry no float noise: each statistic is rounded like its
    metric in per_case.csv (Dice and lesion scores 4 decimals, ml 3). Expected values by hand."""
    spacing = (2.04, 2.04, 3.0)  # autoPET's grid: a voxel is 2.04 x 2.04 x 3 / 1000 = 0.0124848 ml
    for case, pred_voxels in (("a", 27), ("b", 18), ("c", 9)):
        gt = np.zeros((12, 12, 12), np.uint8)
        gt[2:5, 2:5, 2:5] = 1  # 27 voxels
        pred = np.zeros_like(gt)
        pred.reshape(-1)[np.flatnonzero(gt)[:pred_voxels]] = 1  # the first voxels of the lesion
        if case == "c":
            pred[10, 10, 10] = 1  # a false positive, one voxel
        _write(gt, tmp_path / "gt" / f"{case}.nii.gz", spacing=spacing)
        _write(pred, tmp_path / "pred" / f"{case}.nii.gz", spacing=spacing)
    out = tmp_path / "eval"
    assert main(["evaluate", "--pred", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt"),
                 "-o", str(out), "--no-pbar", "-np", "1"]) == 0  # fmt: skip
    text = (out / "summary.csv").read_text()
    assert not re.search(r"\d\.\d{5,}", text), text
    row = next(csv.DictReader(text.splitlines()))
    # Dice 2 x 27/54 = 1, 2 x 18/45 = 0.8, 2 x 9/(10 + 27) = 0.486486...:
    # mean 2.286486... / 3 = 0.762162... -> 0.7622
    assert (row["dice_mean"], row["dice_median"]) == ("0.7622", "0.8")
    # ground truth 27 x 0.0124848 = 0.3370896 ml -> 0.337
    assert row["gt_volume_ml_median"] == "0.337"
    # predicted 9 + 1, 18, 27 voxels: mean 55 / 3 x 0.0124848 = 0.228888 ml -> 0.229; the first
    # quartile halfway between 10 and 18 voxels: 14 x 0.0124848 = 0.1747872 -> 0.175
    assert (row["pred_volume_ml_mean"], row["pred_volume_ml_q1"]) == ("0.229", "0.175")
    # one false-positive voxel among 3 cases: mean 0.0124848 / 3 = 0.0041616 -> 0.004
    assert row["fp_volume_ml_mean"] == "0.004"
    # lesions: 3 found, 1 false positive: precision 3/4, F1 2 x 3 / (6 + 1) = 0.857142... -> 0.8571
    assert (row["lesion_precision"], row["lesion_f1"]) == ("0.75", "0.8571")
    overall = json.loads((out / "summary.json").read_text())["summary"][0]
    assert overall["lesion_f1"] == 0.8571 and overall["pred_volume_ml_mean"] == 0.229
