"""Per-case tumor segmentation metrics, as the autoPET challenge defines them.

All functions take boolean numpy arrays (z, y, x) on one grid and the voxel spacing in mm.

* **Dice** of the tumor class; NaN when the ground truth is empty (autoPET reports such cases
  separately: Dice is undefined there, the false-positive volume still counts).
* **False-positive volume** (ml): the volume of predicted connected components that do not
  overlap the ground truth at all. **False-negative volume** (ml): the volume of ground-truth
  components with no overlap with the prediction; NaN when the ground truth is empty (undefined,
  as the autoPET III evaluation code returns it: ClinicalDataScience/autoPETIII
  ``evaluation-metrics/evaluation_metrics.py``, ``count_false_negatives``), so such cases drop out
  of the FN means and medians instead of pulling them towards 0. Components use
  **18-connectivity** (cc3d), as the official autoPET evaluation (lab-midas/autoPET
  ``val_script.py``) does.
* **Lesion-wise detection**: a ground-truth lesion (component) is detected (TP) when at least one
  predicted voxel overlaps it; a predicted component overlapping no lesion is a FP; an undetected
  lesion is a FN. Sensitivity TP/(TP+FN), precision TP/(TP+FP), F1 = 2TP/(2TP+FP+FN), from
  counts summed over the cases of a group.
* **TMTV error** (ml): predicted minus true tumor volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import numpy as np

CONNECTIVITY = 18


def voxel_ml(spacing_mm: Sequence[float]) -> float:
    """Volume of one voxel in ml."""
    return float(np.prod(spacing_mm)) / 1000.0


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice of two boolean masks; NaN when the ground truth is empty (autoPET convention)."""
    gt_sum = int(gt.sum())
    if gt_sum == 0:
        return float("nan")
    inter = int(np.logical_and(pred, gt).sum())
    return 2.0 * inter / (gt_sum + int(pred.sum()))


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    labels, n = cc3d.connected_components(mask, connectivity=CONNECTIVITY, return_N=True)
    return labels, int(n)


def _sizes(labels: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(labels.ravel(), minlength=n + 1)[1:]


def case_metrics(pred: np.ndarray, gt: np.ndarray, spacing_mm: Sequence[float]) -> dict[str, float]:
    """All per-case metrics of a binary prediction against a binary ground truth.

    Returns keys: dice, fp_volume_ml, fn_volume_ml, gt_volume_ml, pred_volume_ml,
    tmtv_error_ml, lesions_gt, lesions_pred, lesions_tp, lesions_fp, lesions_fn.
    """
    pred = np.asarray(pred, dtype=bool)
    gt = np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground truth {gt.shape}")
    vml = voxel_ml(spacing_mm)
    pred_lab, n_pred = _components(pred)
    gt_lab, n_gt = _components(gt)
    # components that touch the other mask, found with one bincount each (no Python voxel loops)
    pred_hit = np.bincount(pred_lab[gt].ravel(), minlength=n_pred + 1)[1:] > 0
    gt_hit = np.bincount(gt_lab[pred].ravel(), minlength=n_gt + 1)[1:] > 0
    pred_sizes, gt_sizes = _sizes(pred_lab, n_pred), _sizes(gt_lab, n_gt)
    return {
        "dice": dice(pred, gt),
        "fp_volume_ml": float(pred_sizes[~pred_hit].sum()) * vml,
        "fn_volume_ml": float(gt_sizes[~gt_hit].sum()) * vml if n_gt else float("nan"),
        "gt_volume_ml": float(gt.sum()) * vml,
        "pred_volume_ml": float(pred.sum()) * vml,
        "tmtv_error_ml": float(int(pred.sum()) - int(gt.sum())) * vml,
        "lesions_gt": n_gt,
        "lesions_pred": n_pred,
        "lesions_tp": int(gt_hit.sum()),
        "lesions_fp": int((~pred_hit).sum()),
        "lesions_fn": int((~gt_hit).sum()),
    }


def fp_volume_near(
    pred: np.ndarray,
    gt: np.ndarray,
    near: np.ndarray,
    spacing_mm: Sequence[float],
) -> tuple[float, float]:
    """False-positive volume (ml) split into components touching ``near`` and the rest.

    ``near`` is a boolean mask, e.g. hot organs dilated by a margin; a false-positive component
    counts as "near" when any of its voxels lies in it.
    """
    pred_lab, n_pred = _components(np.asarray(pred, dtype=bool))
    sizes = _sizes(pred_lab, n_pred)
    hit_gt = np.bincount(pred_lab[np.asarray(gt, bool)].ravel(), minlength=n_pred + 1)[1:] > 0
    hit_near = np.bincount(pred_lab[np.asarray(near, bool)].ravel(), minlength=n_pred + 1)[1:] > 0
    vml = voxel_ml(spacing_mm)
    fp = ~hit_gt
    return float(sizes[fp & hit_near].sum()) * vml, float(sizes[fp & ~hit_near].sum()) * vml


def fp_volume_near_labels(
    pred: np.ndarray,
    gt_tumor: np.ndarray,
    organ_labels: np.ndarray,
    spacing_mm: Sequence[float],
    organ_ids: Sequence[int],
    margin_mm: float = 10.0,
) -> dict[str, float]:
    """False-positive volume (ml) next to given organs of a label map, and elsewhere.

    Args:
        pred: Predicted tumor mask (z, y, x), boolean.
        gt_tumor: Ground-truth tumor mask (z, y, x), boolean.
        organ_labels: Label map (z, y, x) with organ ids, e.g. the ground-truth LION label file
            (organs 2..K; see ``lion_nnunet.labels``).
        spacing_mm: Voxel spacing in mm, numpy order (z, y, x).
        organ_ids: The organ ids that count (e.g. the hot organs of the tracer).
        margin_mm: A false-positive component is "near" when any voxel lies within this Euclidean
            distance (mm) of one of the organs (0 = inside the organ).

    Returns:
        ``{"fp_volume_ml", "fp_near_organs_ml", "fp_elsewhere_ml"}``.
    """
    from scipy.ndimage import distance_transform_edt

    organs = np.isin(organ_labels, np.asarray(list(organ_ids)))
    if not organs.any():
        near = organs
    elif margin_mm > 0:
        near = distance_transform_edt(~organs, sampling=tuple(spacing_mm)) <= margin_mm
    else:
        near = organs
    at, elsewhere = fp_volume_near(pred, gt_tumor, near, spacing_mm)
    return {"fp_volume_ml": at + elsewhere, "fp_near_organs_ml": at, "fp_elsewhere_ml": elsewhere}


def detection_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Lesion-wise sensitivity, precision and F1 from summed counts (NaN when undefined)."""
    sens = tp / (tp + fn) if tp + fn else float("nan")
    prec = tp / (tp + fp) if tp + fp else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"sensitivity": sens, "precision": prec, "f1": f1}
