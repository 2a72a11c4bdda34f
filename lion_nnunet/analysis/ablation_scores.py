"""Scores of the organ-context ablation: what organ classes are meant to change.

Per holdout case: Dice, lesion-wise detection and false-positive volume split into "at a hot
organ" (a false-positive component within ``margin_mm`` of a physiologically hot organ of the
ground-truth label map) and "elsewhere" (autoPET definitions, 18-connectivity, from
:mod:`lion_nnunet.analysis.metrics`). Per arm: the median Dice over cases with tumor (Dice is
undefined for a tumor-free case), lesion F1 pooled over the holdout, FP volumes summed (ml).
Paired comparisons of two arms: :func:`lion_nnunet.analysis.paired_stats.paired` (Wilcoxon
signed-rank p-value, bootstrap confidence interval of the median paired difference).

A reference that needs no training puts the Dice of the models in scale: the fixed-fraction SUVmax
isocontour of each true lesion (41 %, the EANM procedure guideline's threshold for metabolic tumour
volume, Boellaard et al. 2015, and 50 %), searched only within ``margin_mm`` of that lesion, i.e.
with every lesion's location given. What it scores is how well a lesion's extent can be read off
the PET at that resolution, not detection.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

# re-exported: the benchmarks and the demo import it from here
from lion_nnunet.analysis.paired_stats import paired as paired

#: Hot organs (LION class names) per tracer: FPs within the margin of these count as "at organ".
HOT_ORGANS = {
    "fdg": ("brain", "heart", "kidneys", "urinary_bladder"),
    "psma": ("salivary_glands", "kidneys", "urinary_bladder", "small_bowel", "liver", "spleen"),
}
MARGIN_MM = 12.0


def _arr(path: Path) -> np.ndarray:
    from lion_nnunet.io import read_image

    return sitk.GetArrayFromImage(read_image(path, "prediction"))


def score_case(pred_tumor: np.ndarray, gt_label: np.ndarray, hot_ids: list[int],
               spacing_zyx: np.ndarray, margin_mm: float = MARGIN_MM) -> dict:  # fmt: skip
    """Dice, FP/FN volume (ml), FP at hot organs / elsewhere (ml), lesion counts; (z, y, x)."""
    from lion_nnunet.analysis.metrics import case_metrics, fp_volume_near_labels

    pred, gt = pred_tumor > 0, gt_label == 1
    m = case_metrics(pred, gt, spacing_zyx)
    near = fp_volume_near_labels(pred, gt, gt_label, spacing_zyx, hot_ids, margin_mm)
    return {
        "has_tumor": bool(gt.any()), "dice": m["dice"], "fp_ml": m["fp_volume_ml"],
        "fn_ml": m["fn_volume_ml"], "fp_at_hot_organ_ml": near["fp_near_organs_ml"],
        "fp_elsewhere_ml": near["fp_elsewhere_ml"], "lesions_tp": m["lesions_tp"],
        "lesions_fp": m["lesions_fp"], "lesions_fn": m["lesions_fn"],
    }  # fmt: skip


def score_arm(pred_dir: Path, labels_ts: Path, tracer: str, margin_mm: float = MARGIN_MM):
    """Per-case scores of ``lion predict`` output (``<case>/tumor.nii.gz``) against LION labels."""
    from lion_nnunet.io import read_image
    from lion_nnunet.labels import get_label_set

    ls = get_label_set(tracer)
    hot_ids = [ls.label_of(o) for o in HOT_ORGANS[tracer]]
    rows = []
    for gt_path in sorted(labels_ts.glob("*.nii.gz")):
        case = gt_path.name[: -len(".nii.gz")]
        img = read_image(gt_path, "label map")
        spacing = np.array(img.GetSpacing())[::-1]
        pred = _arr(pred_dir / case / "tumor.nii.gz")
        scores = score_case(pred, sitk.GetArrayFromImage(img), hot_ids, spacing, margin_mm)
        rows.append({"case_id": case, **scores})
    return pd.DataFrame(rows)


def threshold_reference_case(
    pet: np.ndarray,
    gt: np.ndarray,
    spacing_zyx: np.ndarray,
    fraction: float,
    margin_mm: float = MARGIN_MM,
) -> np.ndarray:
    """Union over the true lesions of ``PET >= fraction * SUVmax`` within ``margin_mm`` of each.

    Lesions are 18-connected components of ``gt``; SUVmax is taken within the same neighbourhood
    (the lesion and every voxel whose centre is at most ``margin_mm`` from it). Arrays (z, y, x).
    """
    import cc3d
    from scipy.ndimage import distance_transform_edt, find_objects

    from lion_nnunet.analysis.metrics import CONNECTIVITY

    labels = cc3d.connected_components(gt > 0, connectivity=CONNECTIVITY)
    reach = np.floor(margin_mm / np.asarray(spacing_zyx, float)).astype(int)
    out = np.zeros(gt.shape, bool)
    for i, box in enumerate(find_objects(labels), start=1):
        # the lesion's bounding box grown by the margin holds its whole neighbourhood
        box = tuple(
            slice(max(b.start - r, 0), min(b.stop + r, size))
            for b, r, size in zip(box, reach, gt.shape, strict=True)
        )
        near = distance_transform_edt(labels[box] != i, sampling=spacing_zyx) <= margin_mm
        out[box] |= near & (pet[box] >= fraction * pet[box][near].max())
    return out


def threshold_reference(
    images_ts: Path, labels_ts: Path, out_dir: Path, fraction: float, margin_mm: float = MARGIN_MM
) -> Path:
    """Write the SUVmax-isocontour reference as ``out_dir/<case>/tumor.nii.gz`` for ``score_arm``.

    ``images_ts`` holds ``<case>_0000.nii.gz`` (PET in SUV), ``labels_ts`` the LION label maps
    (tumor = 1). A case without tumor gets an empty mask. Every case is checked (PET present, on
    its label map's grid) before any mask is written. Returns ``out_dir``.
    """
    from lion_nnunet.errors import LionError
    from lion_nnunet.io import array_to_image, geometry_mismatch, read_image, write_image

    gt_paths = sorted(labels_ts.glob("*.nii.gz"))
    pet_paths = [images_ts / f"{p.name[: -len('.nii.gz')]}_0000.nii.gz" for p in gt_paths]
    for gt_path, pet_path in zip(gt_paths, pet_paths, strict=True):
        if not pet_path.is_file():
            raise LionError(f"no PET {pet_path.name} in {images_ts} for the label map {gt_path}")
    masks = {}
    for gt_path, pet_path in zip(gt_paths, pet_paths, strict=True):
        label, pet = read_image(gt_path, "label map"), read_image(pet_path, "PET")
        if (why := geometry_mismatch(label, pet)) is not None:
            raise LionError(f"PET {pet_path} is not on the grid of its label map {gt_path}: {why}")
        spacing = np.array(label.GetSpacing())[::-1]
        gt = sitk.GetArrayFromImage(label) == 1
        mask = threshold_reference_case(
            sitk.GetArrayFromImage(pet), gt, spacing, fraction, margin_mm
        )
        masks[gt_path.name[: -len(".nii.gz")]] = array_to_image(mask.astype(np.uint8), label)
    for case, image in masks.items():
        write_image(image, out_dir / case / "tumor.nii.gz")
    return out_dir


def summarize(per_case: pd.DataFrame) -> dict:
    """Median Dice (cases with tumor), lesion F1 (pooled), FP volumes (sums, ml)."""
    tp, fp, fn = (int(per_case[f"lesions_{k}"].sum()) for k in ("tp", "fp", "fn"))
    f1 = 2 * tp / (2 * tp + fp + fn) if (tp + fp + fn) else float("nan")
    positive = per_case[per_case["has_tumor"]]
    return {
        "cases": len(per_case),
        "cases_with_tumor": len(positive),
        "median_dice": float(positive["dice"].median()),
        "lesion_f1": float(f1),
        "lesions_tp": tp, "lesions_fp": fp, "lesions_fn": fn,
        "fp_at_hot_organs_ml": float(per_case["fp_at_hot_organ_ml"].sum()),
        "fp_elsewhere_ml": float(per_case["fp_elsewhere_ml"].sum()),
        "median_fn_ml": float(per_case["fn_ml"].median()),
    }  # fmt: skip
