"""Safety of long runs: concurrent conversion parts, warnings shown by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk


def _lion(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "lion_nnunet.cli", *args], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env=env or dict(os.environ), stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_concurrent_conversion_parts_share_one_folder(fdg_cohort: Path, nnunet_dirs) -> None:
    """5 parts started at once on one output folder (as a cluster array job does): every part
    succeeds and the folder ends complete; no part deletes another's files in progress."""
    parts = 5
    args = ["convert", "autopet", "--input", str(fdg_cohort / "studies"), "--organs",
            str(fdg_cohort / "organs"), "--metadata", str(fdg_cohort / "cases.csv"),
            "--tracer", "fdg", "--dataset-id", "741", "--name", "Shards", "-np", "1",
            "--no-pbar", "--test-fraction", "0.2", "--num-parts", str(parts)]  # fmt: skip
    procs = [_lion(*args, "--part-id", str(k)) for k in range(parts)]
    outcomes = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert [rc for rc, _ in outcomes] == [0] * parts, [err[-2000:] for _, err in outcomes]
    folder = Path(nnunet_dirs["nnUNet_raw"]) / "Dataset741_Shards"
    studies = sorted(p.parent.parent.name for p in (fdg_cohort / "studies").rglob("SUV.nii.gz"))
    cases = pd.read_csv(folder / "lion_cases.csv")
    assert sorted(cases.case_id) == studies
    train = sorted(cases.case_id[cases.split == "train"])
    test = sorted(cases.case_id[cases.split == "test"])
    assert sorted(p.name for p in (folder / "imagesTr").iterdir()) == [
        f"{c}_0000.nii.gz" for c in train
    ]  # also: no hidden temporary files left behind
    assert sorted(p.name for p in (folder / "labelsTs").iterdir()) == [f"{c}.nii.gz" for c in test]
    assert json.loads((folder / "dataset.json").read_text())["numTraining"] == len(train)
    folds = json.loads((folder / "splits_final.json").read_text())
    assert sorted(c for f in folds for c in f["val"]) == train


def _img(arr: np.ndarray, path: Path) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((4.0, 4.0, 4.0))
    sitk.WriteImage(img, str(path))


def test_warnings_are_shown_by_default_and_hidden_by_q(tmp_path: Path) -> None:
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    mask = np.zeros((8, 8, 8), np.uint8)
    mask[2:4, 2:4, 2:4] = 1
    for case in ("a", "b"):
        _img(mask, gt / f"{case}.nii.gz")
    _img(mask, pred / "a.nii.gz")  # b has no prediction: a warning
    common = ["--pred", str(pred), "--gt", str(gt), "--no-pbar", "-np", "1", "--allow-missing"]
    shown = _lion("evaluate", *common, "-o", str(tmp_path / "e1"))
    assert shown.wait(timeout=120) == 0
    assert "WARNING" in (err := shown.stderr.read()) and "1 case(s) have no prediction: b" in err
    quiet = _lion("-q", "evaluate", *common, "-o", str(tmp_path / "e2"))
    assert quiet.wait(timeout=120) == 0 and "WARNING" not in quiet.stderr.read()
