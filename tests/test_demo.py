"""The demo's verdict: paired per case, with bootstrap CIs, hedged in both directions."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lion_nnunet.demo import verdict

CASES = [f"PETCT_0af7ffe12a_{i}" for i in range(6)]  # case 5 has no tumor


def _arms(dice_diff: list[float], fp_diff: list[float]) -> dict[str, dict]:
    """Hand-made per-case tables: tumor-only's scores, organs' = tumor-only's + the differences."""
    dice_t = np.array([0.5, 0.6, 0.4, 0.55, 0.45, np.nan])
    fp_t = np.array([2.0, 1.0, 3.0, 2.5, 1.5, 4.0])
    base = {"case_id": CASES, "has_tumor": [True] * 5 + [False]}
    tumor_only = pd.DataFrame({**base, "dice": dice_t, "fp_at_hot_organ_ml": fp_t})
    organs = pd.DataFrame({**base, "dice": dice_t + np.array([*dice_diff, np.nan]),
                           "fp_at_hot_organ_ml": fp_t + np.array(fp_diff)})  # fmt: skip
    # rows in another order: the verdict pairs by case id, not by position
    return {"organs": {"per_case": organs[::-1]}, "tumor_only": {"per_case": tumor_only}}


def test_clear_win() -> None:
    text = verdict(_arms([0.1, 0.2, 0.1, 0.3, 0.2], [-1.0, -0.5, -1.0, -2.0, -0.5, -1.5]))
    assert text.splitlines()[0] == "organ context better on Dice and FP at hot organs."
    assert "Dice (cases with tumor), organs - tumor-only: median difference +0.20" in text
    assert "5 cases): organs better" in text and "6 cases): organs better" in text


def test_clear_loss() -> None:
    text = verdict(_arms([-0.1, -0.2, -0.1, -0.3, -0.2], [1.0, 0.5, 1.0, 2.0, 0.5, 1.5]))
    assert text.splitlines()[0] == "tumor-only better on Dice and FP at hot organs."
    assert "organs better" not in text


def test_ci_containing_0_is_not_decided_whichever_way_the_median_leans() -> None:
    # differences -0.3, -0.1, 0.2, 0.4, 0.5: median +0.2, exact bootstrap CI [-0.3, +0.5]
    # (a resample's median is -0.3 with P(Binomial(5, 1/5) >= 3) = 5.8 % > 2.5 %; the same
    # for +0.5), see tests/test_paired_stats.py
    up = [-0.3, -0.1, 0.2, 0.4, 0.5]
    for dice_diff in (up, [-v for v in up]):
        text = verdict(_arms(dice_diff, [0.0] * 6))
        head = text.splitlines()[0]
        assert head.startswith("not decided on Dice and FP at hot organs (the CI contains 0).")
        assert "demo-sized holdout" in head and "better" not in text
        lean = "+0.20" if dice_diff is up else "-0.20"
        low, high = ("-0.30", "+0.50") if dice_diff is up else ("-0.50", "+0.30")
        assert f"median difference {lean} (95 % bootstrap CI {low} to {high}, 5 cases)" in text


def test_one_count_decided_the_other_not() -> None:
    text = verdict(_arms([0.1, 0.2, 0.1, 0.3, 0.2], [0.0] * 6))
    first = text.splitlines()[0]
    assert first == (
        "organ context better on Dice; not decided on FP at hot organs (the CI contains 0)."
    )


def test_worker_processes_follow_nnunet_def_n_proc() -> None:
    from lion_nnunet.demo import worker_processes

    assert worker_processes({"nnUNet_def_n_proc": "1"}) == 1  # the tests' setting
    assert worker_processes({"nnUNet_def_n_proc": "6"}) == 6
    assert worker_processes({"nnUNet_def_n_proc": "0"}) == 2  # not a worker count
    assert worker_processes({}) == 2


def test_a_low_organ_dice_is_said_and_a_good_one_is_not() -> None:
    # organs' Dice = tumor-only's (0.5, 0.6, 0.4, 0.55, 0.45) + the differences: by hand
    # 0.2, 0.3, 0.1, 0.25, 0.15 -> median 0.20; 0.6, 0.7, 0.5, 0.65, 0.55 -> median 0.60
    low = verdict(_arms([-0.3] * 5, [0.0] * 6))
    assert "organ context's median Dice 0.20 is under the 0.5 the demo is sized for" in low
    good = verdict(_arms([0.1] * 5, [0.0] * 6))
    assert "is sized for" not in good
