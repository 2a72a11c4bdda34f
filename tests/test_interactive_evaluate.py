"""`lion evaluate --interactive` equals the official autoPET IV evaluation_metrics.py.

tests/data/interactive/official_metrics_interactive.json holds that script's values
(lab-midas/autoPETCTIV @ 80af68d, evaluation_metrics/evaluation_metrics.py:
compute_interactive_metrics and compute_metrics; provenance in the folder's README.md) for
the step predictions tests/interactive_cases.py writes.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest
from interactive_cases import STUDIES, write_steps, write_studies

from lion_nnunet.cli import main

OFFICIAL = json.loads(
    (Path(__file__).parent / "data" / "interactive" / "official_metrics_interactive.json")
    .read_text()
)  # fmt: skip
COLUMNS = ("dice_auc", "fpv_auc", "fnv_auc", "dice_final", "fpv_final", "fnv_final")


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interactive")
    write_studies(root / "labelsTs", root / "imagesTs")
    write_steps(root / "steps")
    return root


def _same(got: float | None, expected: float | None) -> bool:
    """Equal to the official value; it multiplies float32 pixdims, hence rel 1e-6."""
    if expected is None:
        return got is None or math.isnan(got)
    return got == pytest.approx(expected, rel=1e-6, abs=1e-9)


def _evaluate(data: Path, out: Path, *extra: str) -> int:
    return main(["evaluate", "--interactive", str(data / "steps"), "--gt",
                 str(data / "labelsTs"), "-o", str(out), "--no-pbar", *extra])  # fmt: skip


def test_equals_the_official_metrics(data: Path, tmp_path: Path) -> None:
    assert _evaluate(data, tmp_path / "eval") == 0
    result = json.loads((tmp_path / "eval" / "interactive.json").read_text())
    assert result["cases"] == len(STUDIES) and result["steps"] == 11
    per_case = {row["case_id"]: row for row in result["per_case"]}
    assert set(per_case) == set(OFFICIAL)
    for case, expected in OFFICIAL.items():
        for column in COLUMNS:
            assert _same(per_case[case][column], expected[column]), (case, column)
        steps = [r for r in result["per_step"] if r["case_id"] == case]
        assert [r["step"] for r in steps] == list(range(11))
        for got, want in zip(steps, expected["steps"], strict=True):
            assert _same(got["dice"], want["dice"])
            assert _same(got["fp_volume_ml"], want["fpv"])
            assert _same(got["fn_volume_ml"], want["fnv"])
    # the means skip a case without tumor (NaN Dice), as pandas' mean in the official script
    dice_aucs = [v["dice_auc"] for v in OFFICIAL.values() if v["dice_auc"] is not None]
    assert result["mean"]["dice_auc"] == pytest.approx(sum(dice_aucs) / len(dice_aucs))
    csv = pd.read_csv(tmp_path / "eval" / "per_case.csv").set_index("case_id")
    case = STUDIES[0].case_id
    assert csv.loc[case, "dice_auc"] == round(OFFICIAL[case]["dice_auc"], 4)
    assert len(pd.read_csv(tmp_path / "eval" / "per_step.csv")) == 11 * len(STUDIES)


def test_per_case_folders_are_read_too(data: Path, tmp_path: Path) -> None:
    """The official README's layout: STEPS_DIR/<case>/<case>_pred<i>.nii.gz."""
    steps = tmp_path / "data" / "steps"
    for path in (data / "steps").glob("*.nii.gz"):
        case = path.name.split("_pred")[0]
        (steps / case).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, steps / case / path.name)
    (tmp_path / "data" / "labelsTs").symlink_to(data / "labelsTs")
    assert _evaluate(tmp_path / "data", tmp_path / "eval") == 0
    result = json.loads((tmp_path / "eval" / "interactive.json").read_text())
    row = next(r for r in result["per_case"] if r["case_id"] == STUDIES[1].case_id)
    assert _same(row["dice_auc"], OFFICIAL[STUDIES[1].case_id]["dice_auc"])


def test_a_gap_in_the_steps_is_one_error(data: Path, tmp_path: Path, capsys) -> None:
    shutil.copytree(data / "steps", tmp_path / "data" / "steps")
    (tmp_path / "data" / "labelsTs").symlink_to(data / "labelsTs")
    case = STUDIES[2].case_id
    (tmp_path / "data" / "steps" / f"{case}_pred4.nii.gz").unlink()
    assert _evaluate(tmp_path / "data", tmp_path / "eval") == 1
    err = capsys.readouterr().err
    assert f"case {case} has predictions up to step 10 but none for step(s) 4" in err
    assert not (tmp_path / "eval" / "per_case.csv").exists()


def test_cases_without_steps_are_refused_or_left_out(data: Path, tmp_path: Path, capsys) -> None:
    shutil.copytree(data / "steps", tmp_path / "data" / "steps")
    (tmp_path / "data" / "labelsTs").symlink_to(data / "labelsTs")
    case = STUDIES[3].case_id
    for path in (tmp_path / "data" / "steps").glob(f"{case}_pred*.nii.gz"):
        path.unlink()
    assert _evaluate(tmp_path / "data", tmp_path / "eval") == 1
    assert f"for 1 of 4 case(s): {case}" in capsys.readouterr().err
    assert _evaluate(tmp_path / "data", tmp_path / "eval", "--allow-missing") == 0
    result = json.loads((tmp_path / "eval" / "interactive.json").read_text())
    assert result["cases"] == 3 and result["missing"] == [case]


def test_flags_of_the_plain_evaluation_are_refused(data: Path, tmp_path: Path, capsys) -> None:
    assert _evaluate(data, tmp_path / "eval", "--pet", str(data / "imagesTs")) == 1
    assert "--pet: not with --interactive" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # --pred and --interactive: a usage error
        main(["evaluate", "--pred", "a", "--interactive", "b", "--gt", "c", "-o", "d"])
    assert exit_info.value.code == 2


def test_compare_takes_interactive_steps(data: Path, tmp_path: Path) -> None:
    """Two "methods": the improving steps, and step 0 repeated 11 times (no click helps). The
    AUCs compared are the official ones: for the repeated step 0, 10 x its Dice (trapezoid)."""
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    for study in STUDIES:
        for step in range(11):
            shutil.copy(data / "steps" / f"{study.case_id}_pred0.nii.gz",
                        frozen / f"{study.case_id}_pred{step}.nii.gz")  # fmt: skip
    argv = ["compare", "--interactive", "--method", f"clicks={data / 'steps'}", "--method",
            f"frozen={frozen}", "--gt", str(data / "labelsTs"), "-o", str(tmp_path / "cmp"),
            "--no-pbar"]  # fmt: skip
    assert main(argv) == 0
    table = pd.read_csv(tmp_path / "cmp" / "common_cases.csv").set_index("case_id")
    for case, expected in OFFICIAL.items():
        if expected["dice_auc"] is None:
            assert math.isnan(table.loc[case, "clicks:dice_auc"])
            continue
        assert table.loc[case, "clicks:dice_auc"] == round(expected["dice_auc"], 4)
        frozen_auc = 10 * expected["steps"][0]["dice"]
        assert table.loc[case, "frozen:dice_auc"] == pytest.approx(frozen_auc, abs=5e-5)
    paired = pd.read_csv(tmp_path / "cmp" / "paired.csv")
    assert list(paired.metric) == ["dice_auc", "fpv_auc", "fnv_auc"]
    assert (tmp_path / "cmp" / "box_dice_auc.png").is_file()
