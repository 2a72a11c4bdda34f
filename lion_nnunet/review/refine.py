"""Tumor and background clicks applied to a mask: the one place ``lion review --serve`` refines.

:func:`refine` is the interface the server calls: ``refine(pet, mask, clicks) -> mask``, arrays in
the click files' (i, j, k) order (nibabel's; a SimpleITK array (z, y, x) transposed). Until the
interactive session of the click issue lands, it is a small rule-based stand-in:

* a tumor click outside the mask adds the 26-connected region around it of voxels at or above
  :data:`THRESHOLD_SHARE` (41 %, the classic fixed-threshold rule for FDG lesions) of the hottest
  voxel within :data:`PEAK_RADIUS` voxels of the click, searched in a box of
  :data:`MAX_HALF_WIDTH` voxels each side so a click in a hot organ cannot flood the body;
* a background click inside the mask removes the 26-connected component of the mask holding it;
* tumor clicks are applied first, then background clicks: where both touch, background wins.

TODO(issue 26, interactive): replace the body of :func:`refine` with the interactive session of
``lion_nnunet/interactive/`` (the rule-based edit, or the click model when the gallery's model has
one); the server (:mod:`.corrections`) calls only :func:`refine` and records :data:`METHOD`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from lion_nnunet.interactive.clickfile import Clicks

#: What refined the mask, as corrections.json records it.
METHOD = "rule-based stand-in (lion_nnunet.review.refine): 41% of local SUVmax region grow"
THRESHOLD_SHARE = 0.41
PEAK_RADIUS = 2
MAX_HALF_WIDTH = 20
_FULL = np.ones((3, 3, 3), bool)  # 26-connectivity


def _box(point: tuple[int, ...], shape: tuple[int, ...], half: int) -> tuple[slice, ...]:
    return tuple(
        slice(max(0, p - half), min(s, p + half + 1)) for p, s in zip(point, shape, strict=True)
    )


def _grow(pet: np.ndarray, point: tuple[int, int, int]) -> tuple[tuple[slice, ...], np.ndarray]:
    """The region a tumor click adds: (its box, a boolean mask within the box)."""
    near = _box(point, pet.shape, PEAK_RADIUS)
    patch = pet[near]
    peak_at = np.unravel_index(int(np.argmax(patch)), patch.shape)
    seed = tuple(int(s.start + p) for s, p in zip(near, peak_at, strict=True))
    box = _box(seed, pet.shape, MAX_HALF_WIDTH)
    hot = pet[box] >= THRESHOLD_SHARE * float(pet[seed])
    labels, _ = ndimage.label(hot, structure=_FULL)
    local = tuple(p - s.start for p, s in zip(seed, box, strict=True))
    return box, labels == labels[local]


def refine(pet: np.ndarray, mask: np.ndarray, clicks: Clicks) -> np.ndarray:
    """The mask after ``clicks`` (see the module docstring).

    Args:
        pet: SUV, (i, j, k).
        mask: current tumor mask (bool or 0/1), (i, j, k); not changed.
        clicks: tumor and background voxel indices (i, j, k), inside the image.

    Returns:
        The new mask, bool, (i, j, k).

    Examples:
        >>> pet = np.ones((9, 9, 9)); pet[2:5, 2:5, 2:5] = 10.0
        >>> mask = np.zeros((9, 9, 9), bool); mask[6:8, 6:8, 6:8] = True
        >>> out = refine(pet, mask, Clicks(tumor=((3, 3, 3),), background=((7, 7, 7),)))
        >>> int(out.sum()), bool(out[3, 3, 3]), bool(out[7, 7, 7])
        (27, True, False)
    """
    out = np.asarray(mask) > 0
    pet = np.asarray(pet, dtype=np.float32)
    for point in clicks.tumor:
        if not out[point]:
            box, region = _grow(pet, point)
            out[box] |= region
    if clicks.background:
        labels, _ = ndimage.label(out, structure=_FULL)
        for point in clicks.background:
            if labels[point]:
                out[labels == labels[point]] = False
    return out
