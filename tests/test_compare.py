"""`lion compare`: common cases, paired differences, Wilcoxon p-values, box plots."""

from __future__ import annotations

import json
from math import comb
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
                 "--allow-missing", *extra])  # fmt: skip


def test_a_method_without_every_case_is_refused_unless_allowed(methods: Path, capsys) -> None:
    args = ["compare", "--method", f"good={methods / 'good'}", "--method",
            f"poor={methods / 'poor'}", "--tumor-label", "poor=7", "--gt", str(methods / "gt"),
            "-o", str(methods / "cmp"), "--no-pbar"]  # fmt: skip
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "poor lacks 1 of 6: case4" in err and "good lacks" not in err
    assert "--allow-missing" in err and not (methods / "cmp").exists()


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
    for i, value in expected_poor.items():  # per_case.csv keeps Dice to 4 decimals
        assert table.loc[f"case{i}", "poor:dice"] == pytest.approx(value, abs=5e-5)
    assert table.loc["case5", "poor:fp_volume_ml"] == pytest.approx(0.008)
    paired = pd.read_csv(out / "paired.csv").set_index("metric")
    row = paired.loc["dice"]
    assert (row.method_a, row.method_b, row.cases) == ("good", "poor", 5)
    diffs = table["good:dice"] - table["poor:dice"]
    assert row.median_difference == pytest.approx(diffs.median())
    assert row.wilcoxon_p == pytest.approx(wilcoxon(table["good:dice"], table["poor:dice"]).pvalue)
    assert np.isnan(paired.loc["fp_volume_ml", "wilcoxon_p"])  # only one non-zero difference
    # Dice differences good - poor are 0 (case0) and four positive ones: a bootstrap median is 0
    # when at least 3 of its 5 draws are case0, P = P(Binomial(5, 1/5) >= 3) = 0.058 > 2.5 %,
    # so the CI's lower bound is 0: the CI contains 0 and the verdict is "not decided"
    p_zero = sum(comb(5, k) * 0.2**k * 0.8 ** (5 - k) for k in range(3, 6))
    assert p_zero == pytest.approx(0.05792) and p_zero > 0.025
    assert row.ci95_low == 0.0 and row.ci95_high > 0 and row.verdict == "not decided"
    assert any(
        v.startswith("Dice, good - poor:") and v.endswith("not decided (CI contains 0)")
        for v in result["verdicts"]
    )
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
    assert "none lacks 6 of 6: case0, case1, case2, case3, case4, case5" in capsys.readouterr().err
    assert main([*args, "--allow-missing"]) == 1
    assert "no case in common" in capsys.readouterr().err


def test_box_titles_state_the_cases_each_box_holds(tmp_path: Path) -> None:
    """4 common cases, one without tumor: the Dice boxes hold 3 (Dice undefined), FP boxes 4."""
    from PIL import Image

    for i in range(4):
        gt = np.zeros((12, 12, 12), np.uint8)
        if i:
            gt[2:6, 2:6, 2:6] = 1
        _write(gt, tmp_path / "gt" / f"PETCT_0af7ffe12a_{i}.nii.gz")
        _write(gt, tmp_path / "a" / f"PETCT_0af7ffe12a_{i}.nii.gz")
        gt[2:4] = 0
        _write(gt, tmp_path / "b" / f"PETCT_0af7ffe12a_{i}.nii.gz")
    out = tmp_path / "cmp"
    assert main(["compare", "--method", f"a={tmp_path / 'a'}", "--method", f"b={tmp_path / 'b'}",
                 "--gt", str(tmp_path / "gt"), "-o", str(out), "--no-pbar"]) == 0  # fmt: skip
    table = pd.read_csv(out / "common_cases.csv")
    assert len(table) == 4 and table["a:dice"].notna().sum() == 3  # one Dice undefined
    titles = {m: Image.open(out / f"box_{m}.png").text["Title"] for m in ("dice", "fp_volume_ml")}
    assert titles["dice"] == "dice: 3 of 4 common cases drawn (no tumor: Dice undefined)"
    assert titles["fp_volume_ml"] == "fp_volume_ml: 4 of 4 common cases drawn"
    drawn = json.loads((out / "compare.json").read_text())["plotted_cases"]
    assert drawn["box_dice.png"] == {"a": 3, "b": 3}
