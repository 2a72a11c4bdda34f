"""Scores of the organ-context ablation, against volumes and counts worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lion_nnunet.analysis.ablation_scores import paired, score_case, summarize


def test_score_case_splits_fp_at_hot_organs_from_elsewhere() -> None:
    label = np.zeros((40, 40, 40), np.uint8)
    label[5:10, 5:10, 5:10] = 1  # tumor: 125 voxels
    label[20:30, 20:30, 20:30] = 7  # a hot organ
    pred = np.zeros_like(label)
    pred[5:10, 5:10, 5:8] = 1  # 75 voxels on the tumor
    pred[31:33, 20:22, 20:22] = 1  # 8 voxels, 1 voxel (2 mm) off the organ: FP at hot organ
    pred[2:4, 30:32, 2:4] = 1  # 8 voxels far from everything: FP elsewhere
    s = score_case(pred, label, [7], np.array([2.0, 2.0, 2.0]), margin_mm=4.0)
    voxel_ml = 8 / 1000
    assert s["dice"] == pytest.approx(2 * 75 / (125 + 91))
    assert s["fp_at_hot_organ_ml"] == pytest.approx(8 * voxel_ml)
    assert s["fp_elsewhere_ml"] == pytest.approx(8 * voxel_ml)
    assert (s["lesions_tp"], s["lesions_fp"], s["lesions_fn"]) == (1, 2, 0)


def test_summary_takes_the_median_over_cases_with_tumor_and_pools_lesions() -> None:
    per_case = pd.DataFrame(
        {"has_tumor": [True, True, True, False], "dice": [0.2, 0.6, 0.8, 0.0],
         "lesions_tp": [1, 2, 3, 0], "lesions_fp": [1, 0, 0, 2], "lesions_fn": [1, 0, 1, 0],
         "fp_at_hot_organ_ml": [0.5, 0, 0, 1.5], "fp_elsewhere_ml": [0, 0, 0.25, 0],
         "fn_ml": [1, 0, 2, 0]}
    )  # fmt: skip
    s = summarize(per_case)
    assert s["median_dice"] == 0.6 and s["cases_with_tumor"] == 3
    assert s["lesion_f1"] == pytest.approx(2 * 6 / (2 * 6 + 3 + 2))
    assert s["fp_at_hot_organs_ml"] == 2.0


def test_paired_difference_ci_and_wilcoxon() -> None:
    a = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    r = paired(a, a - 0.1)
    assert r["median_diff"] == pytest.approx(0.1) and r["ci95"] == pytest.approx([0.1, 0.1])
    # all 8 differences positive: exact two-sided signed-rank p = 2 / 2**8
    assert r["p"] == pytest.approx(2 / 2**8)
    assert paired(a, a)["p"] == 1.0
