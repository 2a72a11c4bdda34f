"""The 1 ml SUVpeak / SULpeak sphere with partial-voxel weights, the same on every voxel grid.

A sphere made of the voxels whose centres lie inside it holds 0.88-1.51 ml depending on the
grid, so a peak measured on a 4 mm baseline and a 2 mm follow-up would average different
volumes. Here each voxel is weighted by the share of its volume inside the sphere (voxels wholly
inside 1, wholly outside 0, the rest by :data:`SUBSAMPLES`^3 sub-voxel points), and the weights
are scaled so that they add up to exactly ``volume_ml`` (the sub-sampling's small error goes).
The peak is the highest weighted mean over spheres centred on the mask's voxels; where the
sphere leaves the image the missing voxels are left out of the mean. Arrays are numpy (z, y, x),
spacing (z, y, x) in mm.

Examples:
    >>> w = sphere_weights((4.0, 4.0, 4.0))
    >>> round(float(w.sum()) * 0.064, 6)  # 4 mm voxels hold 0.064 ml
    1.0
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage

#: PERCIST's peak sphere: 1 cm^3.
PEAK_ML = 1.0
#: Sub-voxel points per axis for voxels the sphere's surface cuts.
SUBSAMPLES = 16


def radius_mm(volume_ml: float = PEAK_ML) -> float:
    """Radius (mm) of a sphere of ``volume_ml`` (6.2035 mm for 1 ml)."""
    return (3.0 * volume_ml * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)


def sphere_weights(spacing_zyx, volume_ml: float = PEAK_ML) -> np.ndarray:
    """Weights (z, y, x) of the voxels of a centred sphere: the share of each voxel inside it,
    scaled to add up to ``volume_ml`` / voxel volume. Read-only (cached per grid)."""
    return _weights(tuple(float(s) for s in spacing_zyx), float(volume_ml))


@functools.lru_cache(maxsize=16)
def _weights(spacing: tuple[float, ...], volume_ml: float) -> np.ndarray:
    r = radius_mm(volume_ml)
    h = np.asarray(spacing)
    half = np.floor(r / h + 0.5).astype(int)
    axes = [np.arange(-n, n + 1) * s for n, s in zip(half, h, strict=True)]
    centre = np.stack(np.meshgrid(*axes, indexing="ij"), -1)  # voxel centres, mm
    near = np.maximum(np.abs(centre) - h / 2, 0.0)  # nearest point of each voxel to the centre
    far = np.abs(centre) + h / 2  # farthest corner
    weights = (np.sqrt((far**2).sum(-1)) <= r).astype(np.float64)
    cut = (np.sqrt((near**2).sum(-1)) < r) & (weights == 0)
    sub = (np.arange(SUBSAMPLES) + 0.5) / SUBSAMPLES - 0.5  # sub-voxel offsets in voxels
    points = np.stack(np.meshgrid(sub, sub, sub, indexing="ij"), -1).reshape(-1, 3) * h
    for idx in np.argwhere(cut):
        inside = (((centre[tuple(idx)] + points) ** 2).sum(1) <= r * r).mean()
        weights[tuple(idx)] = inside
    # the sub-sampled shares carry a small error: scale them (never the whole voxels) so that
    # the sphere holds exactly volume_ml
    full = weights.sum() - weights[cut].sum()
    weights[cut] *= (volume_ml * 1000.0 / float(np.prod(h)) - full) / weights[cut].sum()
    weights.flags.writeable = False
    return weights


def peak_means(
    values: np.ndarray, mask: np.ndarray, spacing_zyx, volume_ml: float = PEAK_ML
) -> np.ndarray:
    """Weighted sphere mean around every voxel of ``mask`` (-inf elsewhere), same shape.

    ``values`` should hold every voxel within one sphere radius of the mask (crop with a margin
    of ``radius_mm`` + one voxel); beyond the array's edge voxels are left out of the mean.
    """
    w = sphere_weights(spacing_zyx, volume_ml)
    v = np.nan_to_num(np.asarray(values, dtype=np.float64))
    sums = ndimage.correlate(v, w, mode="constant", cval=0.0)
    counts = ndimage.correlate(np.ones_like(v), w, mode="constant", cval=0.0)
    return np.where(mask, sums / counts, -np.inf)


def peak(
    values: np.ndarray, mask: np.ndarray, spacing_zyx, volume_ml: float = PEAK_ML
) -> tuple[float, tuple[int, ...]]:
    """(highest weighted 1 ml sphere mean centred on a voxel of ``mask``, that voxel (z, y, x)).

    Works in the mask's bounding box grown by the sphere, so the cost follows the mask's size.

    Raises:
        ValueError: ``mask`` is empty.
    """
    mask = np.asarray(mask, bool)
    if not mask.any():
        raise ValueError("empty mask")
    w = sphere_weights(spacing_zyx, volume_ml)
    half = np.array(w.shape) // 2
    idx = np.argwhere(mask)
    lo = np.maximum(idx.min(0) - half, 0)
    hi = np.minimum(idx.max(0) + half + 1, mask.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    means = peak_means(values[box], mask[box], spacing_zyx, volume_ml)
    best = np.unravel_index(int(np.argmax(means)), means.shape)
    return float(means[best]), tuple(int(b + a) for b, a in zip(best, lo, strict=True))
