"""The rule-based edit: what one click changes in a tumor mask, for a model trained without clicks.

A **tumor click** adds the lesion around the click, delineated as a fixed fraction of its peak
above the local background:

1. the local peak is the highest SUV within :data:`PEAK_RADIUS_MM` (10 mm) of the click's voxel
   centre, the local background the median SUV within :data:`REACH_MM` (50 mm); the threshold
   is background + :data:`FRACTION_OF_PEAK` (41 %) x (peak - background);
2. the added region is the connected component (18-connected, as report.json's lesions) of the
   voxels at or above the threshold, within :data:`REACH_MM` (50 mm) of the click, that holds the
   click's voxel; when the click's voxel itself is below the threshold (a click on a lesion's
   rim), the component holding the peak voxel is taken; the click's voxel is always added;
3. a click on a voxel that is already tumor changes nothing; where the local peak is not above
   the background, only the click's voxel is added.

Why these numbers: 41 % of SUVmax is the fixed-threshold metabolic tumour volume of the EANM
procedure guidelines for FDG PET/CT tumour imaging (Boellaard et al., Eur J Nucl Med Mol Imaging
2015;42:328-354), the delineation a nuclear-medicine reader knows, here taken above the local
background (as background-adapted thresholds do): on the phantoms, 41 % of a faint lesion's
peak (SUVmax 1.5 in a background of 0.85) lies below the background and would take the whole
50 mm ball; taking the peak within 10 mm
rather than at the voxel lets a click land a voxel or two off the hot spot (PET voxels are
2-4 mm) without taking the peak of a neighbouring structure 2 cm away. The 50 mm reach bounds
what a click can change: a lesion up to 10 cm across clicked at its centre is taken whole, and a
low threshold (a faint lesion beside liver or blood pool at similar SUV) cannot spread over the
body. A threshold of a peak cannot separate a lesion from an adjacent organ of similar uptake;
that is the model path's job (a click model, docs/interactive.md).

A **background click** removes the predicted tumor component (18-connected) that holds the
clicked voxel; a background click outside the predicted tumor changes nothing.

Arrays are numpy (z, y, x) as SimpleITK returns them; points are (z, y, x) voxel indices; spacing
(z, y, x) in mm. Each function returns the box (tuple of slices) it may change and the new mask
inside it, so the caller writes only there.
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import numpy as np

from lion_nnunet.inference.report import CONNECTIVITY

#: A tumor click's threshold as a fraction of the local peak SUV (EANM's 41 % SUVmax).
FRACTION_OF_PEAK = 0.41
#: The local peak is the highest SUV within this distance of the click (mm).
PEAK_RADIUS_MM = 10.0
#: A tumor click changes only voxels within this distance of the click (mm).
REACH_MM = 50.0
#: A background click first looks for its component within this many voxels of the click; the
#: box doubles until the component does not touch the box's inner faces.
FIRST_BOX_VOXELS = 16

Box = tuple[slice, ...]
Point = tuple[int, int, int]


def ball_box(point: Point, radius_mm: float, spacing: Sequence[float], shape: Sequence[int]) -> Box:
    """The smallest box of whole voxels holding every voxel centre within ``radius_mm``."""
    return tuple(
        slice(max(0, p - int(radius_mm // s)), min(n, p + int(radius_mm // s) + 1))
        for p, s, n in zip(point, spacing, shape, strict=True)
    )


def ball_in_box(point: Point, radius_mm: float, spacing: Sequence[float], box: Box) -> np.ndarray:
    """Boolean mask of the box: voxel centres within ``radius_mm`` (mm) of the point's centre."""
    axes = [
        ((np.arange(b.start, b.stop) - p) * s) ** 2
        for p, s, b in zip(point, spacing, box, strict=True)
    ]
    d2 = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]
    return d2 <= radius_mm**2


def _local(point: Point, box: Box) -> Point:
    return tuple(p - b.start for p, b in zip(point, box, strict=True))  # type: ignore[return-value]


def tumor_click_region(
    suv: np.ndarray,
    point: Point,
    spacing: Sequence[float],
    fraction: float = FRACTION_OF_PEAK,
    peak_radius_mm: float = PEAK_RADIUS_MM,
    reach_mm: float = REACH_MM,
) -> tuple[Box, np.ndarray]:
    """The region a tumor click adds (the module's rule): (box, boolean region inside the box).

    Args:
        suv: PET in SUV, (z, y, x).
        point: the clicked voxel (z, y, x).
        spacing: voxel spacing (z, y, x) in mm.
        fraction: threshold as a fraction of the local peak.
        peak_radius_mm: the local peak is the maximum within this distance (mm).
        reach_mm: the region lies within this distance of the click (mm).
    """
    box = ball_box(point, reach_mm, spacing, suv.shape)
    local = np.asarray(suv[box], dtype=np.float32)
    here = _local(point, box)
    region = np.zeros(local.shape, dtype=bool)
    region[here] = True
    near = ball_in_box(point, peak_radius_mm, spacing, box)
    reach = ball_in_box(point, reach_mm, spacing, box)
    peak = float(local[near].max())
    background = float(np.median(local[reach]))
    if not peak > background:
        return box, region
    threshold = background + fraction * (peak - background)
    above = (local >= threshold) & reach
    if above[here]:
        seed = here
    else:  # the first voxel (C order) of the peak within the peak radius
        seed = np.unravel_index(int(np.argmax(np.where(near, local, -np.inf))), local.shape)
    labels = cc3d.connected_components(above, connectivity=CONNECTIVITY)
    region |= labels == labels[seed]
    return box, region


def tumor_component(
    mask: np.ndarray, point: Point, first_box: int = FIRST_BOX_VOXELS
) -> tuple[Box, np.ndarray] | None:
    """The 18-connected component of ``mask`` holding ``point``: (its bounding box, component).

    None when the point is not in the mask. The component is found in a box around the point
    that doubles until the component does not reach the box's faces inside the image, so the
    work grows with the component, not with the image.
    """
    if not mask[point]:
        return None
    half = first_box
    while True:
        box = tuple(
            slice(max(0, p - half), min(n, p + half + 1))
            for p, n in zip(point, mask.shape, strict=True)
        )
        labels = cc3d.connected_components(mask[box].astype(bool), connectivity=CONNECTIVITY)
        component = labels == labels[_local(point, box)]
        inner_faces = [
            component[(slice(None),) * axis + (index,)].any()
            for axis, b in enumerate(box)
            for index, at_border in ((0, b.start == 0), (-1, b.stop == mask.shape[axis]))
            if not at_border
        ]
        if not any(inner_faces):
            break
        half *= 2
    where = np.nonzero(component)
    tight = tuple(
        slice(b.start + int(w.min()), b.start + int(w.max()) + 1)
        for b, w in zip(box, where, strict=True)
    )
    inner = tuple(
        slice(t.start - b.start, t.stop - b.start) for t, b in zip(tight, box, strict=True)
    )
    return tight, component[inner]
