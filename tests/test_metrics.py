"""Metrics on hand-built volumes whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lion_nnunet.analysis.metrics import (
    case_metrics,
    detection_scores,
    dice,
    fp_volume_near,
    fp_volume_near_labels,
)

SPACING = (2.0, 2.0, 2.0)  # 8 mm^3 = 0.008 ml per voxel
VML = 0.008


def _vol() -> np.ndarray:
    return np.zeros((20, 20, 20), dtype=bool)


def test_two_lesions_one_missed_one_false_positive() -> None:
    gt, pred = _vol(), _vol()
    gt[2:5, 2:5, 2:5] = True  # lesion A, 27 voxels, found
    gt[12:14, 12:14, 12:14] = True  # lesion B, 8 voxels, missed
    pred[3:6, 3:6, 3:6] = True  # overlaps A (8 voxels shared), 27 voxels
    pred[15:18, 2:4, 2:4] = True  # false positive, 12 voxels
    m = case_metrics(pred, gt, SPACING)
    assert m["dice"] == pytest.approx(2 * 8 / (35 + 39))
    assert m["fp_volume_ml"] == pytest.approx(12 * VML)
    assert m["fn_volume_ml"] == pytest.approx(8 * VML)
    assert (m["lesions_gt"], m["lesions_tp"], m["lesions_fn"], m["lesions_fp"]) == (2, 1, 1, 1)
    assert m["tmtv_error_ml"] == pytest.approx((39 - 35) * VML)


def test_connectivity_18_joins_edges_not_corners() -> None:
    edge, corner = _vol(), _vol()
    edge[5, 5, 5] = edge[5, 6, 6] = True  # share an edge: one component with 18-connectivity
    corner[5, 5, 5] = corner[6, 6, 6] = True  # share only a corner: two components
    assert case_metrics(edge, edge, SPACING)["lesions_gt"] == 1
    assert case_metrics(corner, corner, SPACING)["lesions_gt"] == 2
    # a predicted component touching one of two corner-neighbours leaves the other one missed
    pred = _vol()
    pred[5, 5, 5] = True
    m = case_metrics(pred, corner, SPACING)
    assert (m["lesions_tp"], m["lesions_fn"]) == (1, 1)
    assert m["fn_volume_ml"] == pytest.approx(VML)


def test_touching_components_are_one_lesion() -> None:
    gt, pred = _vol(), _vol()
    gt[2:6, 2:6, 2:6] = True
    gt[6:9, 2:6, 2:6] = True  # face-adjacent block: same lesion
    pred[7, 3, 3] = True
    m = case_metrics(pred, gt, SPACING)
    assert (m["lesions_gt"], m["lesions_tp"], m["fn_volume_ml"], m["fp_volume_ml"]) == (1, 1, 0, 0)


def test_empty_ground_truth_like_autopet() -> None:
    gt, pred = _vol(), _vol()
    pred[1:3, 1:3, 1:3] = True
    m = case_metrics(pred, gt, SPACING)
    assert math.isnan(m["dice"])  # undefined, reported separately
    assert m["fp_volume_ml"] == pytest.approx(8 * VML)  # still counts
    # false-negative volume is undefined without ground truth (autoPET III evaluation: NaN)
    assert math.isnan(m["fn_volume_ml"]) and m["lesions_gt"] == 0
    both_empty = case_metrics(_vol(), _vol(), SPACING)
    assert math.isnan(both_empty["dice"]) and both_empty["fp_volume_ml"] == 0
    assert math.isnan(both_empty["fn_volume_ml"])


def _brute_force_autopet(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float, float]:
    """The autoPET III rules by brute force: scipy labels (18-neighbourhood), one component at a
    time; Dice and FN volume NaN on empty ground truth, FP volume 0 on empty prediction."""
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(3, 2)
    if not gt.any():
        dice_ref = fn = float("nan")
    else:
        dice_ref = 2 * float((gt & pred).sum()) / float(gt.sum() + pred.sum())
        labels, n = ndimage.label(gt, structure)
        fn = sum(float((labels == i).sum()) for i in range(1, n + 1)
                 if not (pred & (labels == i)).any())  # fmt: skip
    labels, n = ndimage.label(pred, structure)
    fp = sum(float((labels == i).sum()) for i in range(1, n + 1)
             if not (gt & (labels == i)).any())  # fmt: skip
    return dice_ref, fp * VML, fn * VML if not math.isnan(fn) else fn


def test_case_metrics_match_autopet_rules_on_random_cases() -> None:
    rng = np.random.default_rng(5)
    for k in range(12):
        gt = rng.random((12, 12, 12)) > (0.97 if k % 3 else 1.0)  # every third case: empty GT
        pred = rng.random((12, 12, 12)) > 0.96
        m = case_metrics(pred, gt, SPACING)
        want = _brute_force_autopet(pred, gt)
        got = (m["dice"], m["fp_volume_ml"], m["fn_volume_ml"])
        np.testing.assert_allclose(got, want, equal_nan=True)


def test_empty_prediction() -> None:
    gt = _vol()
    gt[4:6, 4:6, 4:6] = True
    m = case_metrics(_vol(), gt, SPACING)
    assert m["dice"] == 0.0 and m["fn_volume_ml"] == pytest.approx(8 * VML)
    assert dice(gt, gt) == 1.0


def test_fp_near_organs_and_detection_scores() -> None:
    gt, pred, near = _vol(), _vol(), _vol()
    pred[1:3, 1:3, 1:3] = True  # FP touching the organ margin
    pred[15:17, 15:17, 15:17] = True  # FP elsewhere
    near[0:2, 0:2, 0:2] = True
    at_organ, elsewhere = fp_volume_near(pred, gt, near, SPACING)
    assert at_organ == pytest.approx(8 * VML) and elsewhere == pytest.approx(8 * VML)
    assert detection_scores(2, 1, 1) == {"sensitivity": 2 / 3, "precision": 2 / 3, "f1": 2 / 3}
    assert math.isnan(detection_scores(0, 0, 0)["f1"])


def test_fp_near_labels_uses_margin_in_mm() -> None:
    gt, pred = _vol(), _vol()
    organs = np.zeros((20, 20, 20), np.uint8)
    organs[0:4, 0:4, 0:4] = 5  # a hot organ (id 5)
    organs[10:14, 0:4, 0:4] = 7  # an organ that does not count
    pred[0:4, 5, 0:2] = True  # FP 2 voxels (4 mm) beyond organ 5: 8 voxels
    pred[10:12, 5:7, 0:2] = True  # FP next to organ 7 only: 8 voxels
    pred[17:19, 17:19, 17:19] = True  # FP far away: 8 voxels
    gt[16, 0, 0] = True  # a lesion without prediction does not change FP volume
    m = fp_volume_near_labels(pred, gt, organs, SPACING, organ_ids=[5], margin_mm=4.0)
    assert m["fp_near_organs_ml"] == pytest.approx(8 * VML)
    assert m["fp_elsewhere_ml"] == pytest.approx(16 * VML)
    narrow = fp_volume_near_labels(pred, gt, organs, SPACING, organ_ids=[5], margin_mm=3.9)
    assert narrow["fp_near_organs_ml"] == 0 and narrow["fp_volume_ml"] == pytest.approx(24 * VML)
    both = fp_volume_near_labels(pred, gt, organs, SPACING, organ_ids=[5, 7], margin_mm=4.0)
    assert both["fp_near_organs_ml"] == pytest.approx(16 * VML)
