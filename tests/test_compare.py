"""`lion compare`: common cases, paired differences, Wilcoxon p-values, box plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy.stats import wilcoxon

from lion_nnunet.cli import main

CASES = [f"case{i}" for i in range(6)]


def _write(arr: np.ndarray, path: Path) -> None:
    img = sitk.GetImageFromArray(arr.astype(np.uint8))
    img.SetSpacing((2.0, 2.0, 2.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(path))


@pytest.fixture
def methods(tmp_path: Path) -> Path:
    """Ground truth with a 4x4x4 lesion + an organ; 'good' finds it, 'poor' loses i slices."""
    for i, case in enumerate(CASES):
        gt = np.zeros((12, 12, 12), np.uint8)
        gt[2:6, 2:6, 2:6] = 1
        gt[8:11, 8:11, 8:11] = 2  # organ class, ignored
        _write(gt, tmp_path / "gt" / f"{case}.nii.gz")
        _write(gt, tmp_path / "good" / case / "tumor.nii.gz")  # lion predict layout, organ kept
        poor = np.zeros_like(gt)
        poor[2 : 6 - min(i, 3), 2:6, 2:6] = 7  # another tool, tumor value 7; case0 is perfect
        if i == 5:
            poor[0, 10, 10] = 7  # a false positive
        if case != "case4":  # this tool skipped case4
            _write(poor, tmp_path / "poor" / f"{case}.nii.gz")
    return tmp_path


def _run(methods: Path, *extra: str) -> int:
    return main(["compare", "--method", f"good={methods / 'good'}",
                 "--method", f"poor={methods / 'poor'}", "--tumor-label", "poor=7",
                 "--gt", str(methods / "gt"), "-o", str(methods / "cmp"), "--no-pbar",
                 *extra])  # fmt: skip


def test_paired_differences_and_wilcoxon_match_scipy(methods: Path) -> None:
    assert _run(methods) == 0
    out = methods / "cmp"
    result = json.loads((out / "compare.json").read_text())
    assert result["common_cases"] == 5
    assert result["only_some"] == {"good": ["case4"], "poor": []}
    table = pd.read_csv(out / "common_cases.csv").set_index("case_id")
    assert "case4" not in table.index
    assert (table["good:dice"] == 1.0).all()
    expected_poor = {0: 1.0, 1: 2 * 48 / 112, 2: 2 * 32 / 96, 3: 2 * 16 / 80, 5: 2 * 16 / 81}
    for i, value in expected_poor.items():
        assert table.loc[f"case{i}", "poor:dice"] == pytest.approx(value)
    assert table.loc["case5", "poor:fp_volume_ml"] == pytest.approx(0.008)
    paired = pd.read_csv(out / "paired.csv").set_index("metric")
    row = paired.loc["dice"]
    assert (row.method_a, row.method_b, row.cases) == ("good", "poor", 5)
    diffs = table["good:dice"] - table["poor:dice"]
    assert row.median_difference == pytest.approx(diffs.median())
    assert row.wilcoxon_p == pytest.approx(wilcoxon(table["good:dice"], table["poor:dice"]).pvalue)
    assert np.isnan(paired.loc["fp_volume_ml", "wilcoxon_p"])  # only one non-zero difference
    for metric in ("dice", "fp_volume_ml", "fn_volume_ml"):
        png = out / f"box_{metric}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    # each method's own evaluation is kept, missing case included
    per_case = pd.read_csv(out / "poor" / "per_case.csv").set_index("case_id")
    assert per_case.loc["case4", "status"] == "missing"


def test_rerun_needs_overwrite_and_json_output(methods: Path, capsys) -> None:
    assert _run(methods) == 0
    capsys.readouterr()
    assert _run(methods) == 1
    assert "use --overwrite" in capsys.readouterr().err
    assert _run(methods, "--overwrite", "--json") == 0
    assert json.loads(capsys.readouterr().out)["common_cases"] == 5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "a=x"], "at least two --method"),
        (["--method", "a=x", "--method", "bad"], "expected NAME=FOLDER"),
        (["--method", "a=x", "--method", "a=y"], "given twice"),
        (["--method", "a=x", "--method", "b=y", "--tumor-label", "b=one"], "NAME=INTEGER"),
        (["--method", "a=x", "--method", "b=y", "--tumor-label", "c=2"], "unknown method"),
    ],
)
def test_bad_method_specs(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    assert main(["compare", *args, "--gt", str(tmp_path), "-o", str(tmp_path / "o")]) == 1
    assert message in capsys.readouterr().err


def test_no_common_case_is_an_error(methods: Path, capsys) -> None:
    empty = methods / "empty"
    empty.mkdir()
    args = ["compare", "--method", f"good={methods / 'good'}", "--method", f"none={empty}",
            "--gt", str(methods / "gt"), "-o", str(methods / "c2"), "--no-pbar"]  # fmt: skip
    assert main(args) == 1
    assert "no case in common" in capsys.readouterr().err
