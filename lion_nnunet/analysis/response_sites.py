"""Baseline lesion sites measured on the follow-up PET, and PERCIST's secondary sum.

A complete response is measured, not inferred from an empty mask: every baseline lesion is
carried to the follow-up grid through the registration (nearest neighbour, plus its SULpeak
sphere's centre), grown by :data:`SITE_MARGIN_MM` for the residual misalignment, and the highest
1 ml sphere mean of follow-up SUL centred in that region is the site's follow-up SULpeak,
whether or not the follow-up mask has a lesion there. Arrays are numpy (z, y, x).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import distance_transform_edt, find_objects

from lion_nnunet.analysis import percist as pc
from lion_nnunet.analysis.response_match import resample_to
from lion_nnunet.io import array_to_image

#: A site is the registered baseline lesion grown by this margin (mm): the residual misalignment
#: after registration (docs/response.md: up to 4.5 mm on the phantoms).
SITE_MARGIN_MM = 5.0
#: Secondary sum: up to 5 hottest measurable lesions, at most 2 per organ (Wahl 2009, Appendix).
SECONDARY_MAX_LESIONS = 5
SECONDARY_MAX_PER_ORGAN = 2


def measure_sites(
    baseline_labels: np.ndarray,
    peak_centres_mm: dict[int, tuple[float, float, float]],
    baseline_image: sitk.Image,
    followup_image: sitk.Image,
    followup_sul: np.ndarray,
    transform: sitk.Transform,
) -> dict[int, float | None]:
    """Follow-up SULpeak at each baseline lesion's site (None: outside the follow-up image).

    Args:
        baseline_labels: baseline lesions 1..n (z, y, x) on the baseline grid.
        peak_centres_mm: baseline lesion id -> its SULpeak sphere centre (LPS x, y, z mm).
        baseline_image, followup_image: the two PETs (grids).
        followup_sul: follow-up PET in SUL (z, y, x).
        transform: maps baseline points to follow-up points (``Alignment.transform``).
    """
    inverse = transform.GetInverse()
    on_follow = resample_to(array_to_image(baseline_labels.astype(np.uint32), baseline_image),
                            followup_image, inverse, labels=True)  # fmt: skip
    spacing = np.asarray(followup_image.GetSpacing()[::-1], float)
    shape = np.array(followup_sul.shape)
    boxes = find_objects(on_follow.astype(np.int64), max_label=max(peak_centres_mm, default=0))
    pad = np.ceil((SITE_MARGIN_MM + pc.PEAK_RADIUS_MM) / spacing).astype(int) + 1
    out: dict[int, float | None] = {}
    for lesion, centre_mm in peak_centres_mm.items():
        point = transform.TransformPoint(tuple(float(c) for c in centre_mm))
        idx = followup_image.TransformPhysicalPointToContinuousIndex(point)
        centre = np.rint(np.asarray(idx, float)[::-1]).astype(int)  # (z, y, x)
        points = [centre] if ((centre >= 0) & (centre < shape)).all() else []
        box = boxes[lesion - 1] if lesion - 1 < len(boxes) else None
        if box is not None:
            points += [np.array([s.start for s in box]), np.array([s.stop - 1 for s in box])]
        if not points:
            out[lesion] = None
            continue
        lo = np.maximum(np.min(points, 0) - pad, 0)
        hi = np.minimum(np.max(points, 0) + pad + 1, shape)
        crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        region = on_follow[crop] == lesion
        if ((centre >= 0) & (centre < shape)).all():
            region[tuple(centre - lo)] = True
        region = distance_transform_edt(~region, sampling=spacing) <= SITE_MARGIN_MM
        out[lesion] = pc.sul_peak(followup_sul[crop], region, spacing)[0]
    return out


def sites_in_liver(
    peak_centres_mm: dict[int, tuple[float, float, float]],
    followup_image: sitk.Image,
    transform: sitk.Transform,
    followup_liver: np.ndarray | None,
) -> set[int]:
    """Baseline lesions whose SULpeak centre, carried to the follow-up, lies in its liver mask."""
    if followup_liver is None:
        return set()
    out = set()
    shape = np.array(followup_liver.shape)
    for lesion, centre_mm in peak_centres_mm.items():
        point = transform.TransformPoint(tuple(float(c) for c in centre_mm))
        idx = followup_image.TransformPhysicalPointToContinuousIndex(point)
        zyx = np.rint(np.asarray(idx, float)[::-1]).astype(int)
        if ((zyx >= 0) & (zyx < shape)).all() and followup_liver[tuple(zyx)]:
            out.add(lesion)
    return out


def secondary_sum(lesions: list[dict], threshold: float | None) -> dict:
    """PERCIST's secondary measure: the summed SULpeak of up to 5 hottest lesions, at most 2 per
    organ (Wahl 2009, Appendix: "up to 5 measurable target lesions, up to 2 per organ").

    Args:
        lesions: rows with ``id``, ``sul_peak`` and ``organ`` (None: not known; each such lesion
            counts as its own organ).
        threshold: measurability threshold (SUL); None takes every lesion.

    Returns:
        ``{"sul_peak_sum": float | None, "lesions": [ids]}``.
    """
    chosen, per_organ = [], {}
    for row in sorted(lesions, key=lambda r: -r["sul_peak"]):
        if threshold is not None and row["sul_peak"] < threshold:
            continue
        organ = row.get("organ") or f"lesion {row['id']}"
        if per_organ.get(organ, 0) >= SECONDARY_MAX_PER_ORGAN:
            continue
        per_organ[organ] = per_organ.get(organ, 0) + 1
        chosen.append(row)
        if len(chosen) == SECONDARY_MAX_LESIONS:
            break
    total = round(sum(r["sul_peak"] for r in chosen), 2) if chosen else None
    return {"sul_peak_sum": total, "lesions": [r["id"] for r in chosen]}
