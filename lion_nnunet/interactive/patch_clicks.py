"""Clicks for one training patch, drawn from its ground truth: the robot user, cheaply.

The click trainer (``nnUNetTrainer_LION_Clicks``) gives every patch of a batch its own clicks,
so the network learns what a click means. They follow the autoPET IV robot user
(:func:`lion_nnunet.interactive.simulate.robot_clicks`) with the costs cut to one distance
transform per kind and patch:

1. with probability ``no_click_probability`` the patch gets **no clicks** (both channels zero):
   the same network is then also the automatic model, trained on a quarter of its patches
   as one;
2. otherwise ``n`` tumor clicks, ``n`` uniform in 0..``max_clicks``: on ``n`` of the patch's
   26-connected tumor components drawn at random (without replacement), each at its centre
   (the voxel farthest from the component's outside, Euclidean distance transform in voxels);
   with fewer components than ``n``, the rest go to random voxels of the drawn components
   (the robot's boundary clicks, anywhere in the component here);
3. and ``m`` background clicks, ``m`` uniform in 0..``max_clicks``, in the same way on the
   components of the patch's high-uptake non-tumor voxels: above the 99.75th percentile of the
   patch's non-tumor voxels (the robot takes the percentile over the whole study), leaving out
   the voxels touching tumor (26-neighbours): in a patch centred on a lesion, the hottest
   non-tumor voxels are otherwise the lesion's partial-volume rim, where the robot, looking at
   the whole study's hot organs, rarely clicks.

Only the tumor label decides: organ classes count as background, as they are auxiliary in LION.
Arrays are (z, y, x) of the patch; points are voxel indices of the patch.
"""

from __future__ import annotations

import cc3d
import numpy as np
from scipy.ndimage import binary_dilation, distance_transform_edt, maximum_position

from .simulate import CONNECTIVITY, PERCENTILE

NO_CLICK_PROBABILITY = 0.25
MAX_CLICKS = 5

Point = tuple[int, int, int]


def _component_clicks(mask: np.ndarray, n: int, rng: np.random.Generator) -> list[Point]:
    """``n`` clicks on ``mask``: centres of ``min(n, components)`` random components, then
    random voxels of those components."""
    if n == 0 or not mask.any():
        return []
    labels, count = cc3d.connected_components(mask, connectivity=CONNECTIVITY, return_N=True)
    drawn = rng.choice(np.arange(1, count + 1), size=min(n, count), replace=False)
    distance = distance_transform_edt(mask)
    points: list[Point] = [
        tuple(int(v) for v in p)  # type: ignore[misc]
        for p in maximum_position(distance, labels, [int(d) for d in drawn])
    ]
    for k in range(n - len(points)):
        voxels = np.argwhere(labels == drawn[k % len(drawn)])
        points.append(tuple(int(v) for v in voxels[rng.integers(len(voxels))]))  # type: ignore[arg-type]
    return points


def patch_clicks(
    tumor: np.ndarray,
    image: np.ndarray,
    rng: np.random.Generator,
    no_click_probability: float = NO_CLICK_PROBABILITY,
    max_clicks: int = MAX_CLICKS,
) -> tuple[list[Point], list[Point]]:
    """Tumor and background clicks for one patch (see the module doc).

    Args:
        tumor: the patch's tumor mask (z, y, x), bool.
        image: the patch's PET (z, y, x), any monotone transform of SUV (the normalized input).
        rng: the generator the draws use.

    Returns:
        (tumor clicks, background clicks), voxel indices of the patch.

    Examples:
        >>> tumor = np.zeros((9, 9, 9), bool); tumor[2:7, 2:7, 2:7] = True
        >>> image = np.where(tumor, 5.0, 1.0); image[0, 0, 8] = 9.0
        >>> rng = np.random.default_rng(0)
        >>> clicks = [patch_clicks(tumor, image, rng, 0.0, 1) for _ in range(20)]
        >>> sorted({c for t, _ in clicks for c in t})  # only the lesion's centre
        [(4, 4, 4)]
        >>> sorted({c for _, b in clicks for c in b})  # only the hot non-tumor voxel
        [(0, 0, 8)]
    """
    if rng.random() < no_click_probability:
        return [], []
    tumor = np.asarray(tumor, dtype=bool)
    tumor_points = _component_clicks(tumor, int(rng.integers(max_clicks + 1)), rng)
    background = image[~tumor]
    hot = np.zeros_like(tumor)
    if background.size:
        near = binary_dilation(tumor, np.ones((3, 3, 3), bool)) if tumor.any() else tumor
        hot = (image > np.percentile(background, PERCENTILE)) & ~near
    background_points = _component_clicks(hot, int(rng.integers(max_clicks + 1)), rng)
    return tumor_points, background_points
