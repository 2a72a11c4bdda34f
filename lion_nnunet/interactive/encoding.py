"""Clicks as network input: two channels (tumor clicks, background clicks), one function each.

A click model (``nnUNetTrainer_LION_Clicks``) gets the PET plus two channels on the same grid:
channel 0 holds the tumor clicks, channel 1 the background clicks. Each channel is the maximum
over its clicks of a bump that is 1 at the clicked voxel and falls with the Euclidean distance
``d`` (mm) from it; **no clicks is all zeros**, so a click model given zero click channels is an
automatic model. Two bumps, compared by measurement on the demo phantoms
(``benchmarks/clicks.py``, docs/interactive.md):

* ``"edt"``: a Euclidean distance map, ``max(0, 1 - d / EDT_RADIUS_MM)``: linear in the distance,
  reaching 40 mm (the encoding the autoPET III winner's click model found better);
* ``"gauss"``: a Gaussian blob, ``exp(-d^2 / (2 sigma^2))`` with sigma = :data:`GAUSS_SIGMA_MM`
  (6 mm), cut at 3 sigma: ``nnUNetTrainer_LION_Clicks``'s encoding, ahead on the demo
  phantoms in one training of each (``benchmarks/results/clicks/summary.json``).

Arrays are (z, y, x) in whatever grid the network sees (nnU-Net's preprocessed grid at
prediction, the training patch in training); points are voxel indices of that grid and spacing
is that grid's, in mm.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The two click channels, in channel order after the image channels.
CLICK_NAMES = ("tumor", "background")
EDT_RADIUS_MM = 40.0
GAUSS_SIGMA_MM = 6.0
ENCODINGS = ("edt", "gauss")

Point = tuple[int, int, int]


def _reach_mm(encoding: str) -> float:
    """Distance (mm) beyond which a click's bump is 0."""
    if encoding == "edt":
        return EDT_RADIUS_MM
    if encoding == "gauss":
        return 3 * GAUSS_SIGMA_MM
    raise ValueError(f"click encoding {encoding!r}: expected one of {', '.join(ENCODINGS)}")


def reach_voxels(encoding: str, spacing: Sequence[float]) -> tuple[int, ...]:
    """Per axis, how many voxels from a click its bump reaches (the bump's box half-width)."""
    reach = _reach_mm(encoding)
    return tuple(int(np.floor(reach / float(s))) for s in spacing)


def _bump(d2: np.ndarray, encoding: str) -> np.ndarray:
    """The bump at squared distance ``d2`` (mm^2)."""
    if encoding == "edt":
        return np.clip(1.0 - np.sqrt(d2) / EDT_RADIUS_MM, 0.0, None)
    values = np.exp(-d2 / (2 * GAUSS_SIGMA_MM**2))
    values[d2 > (3 * GAUSS_SIGMA_MM) ** 2] = 0.0
    return values


def encode_channel(
    points: Sequence[Sequence[int]], shape: Sequence[int], spacing: Sequence[float], encoding: str
) -> np.ndarray:
    """One click channel (float32, ``shape``): the maximum over ``points`` of their bumps.

    Examples:
        >>> c = encode_channel([(0, 0, 2)], (1, 1, 5), (1.0, 1.0, 10.0), "edt")
        >>> [round(float(v), 2) for v in c[0, 0]]  # 1 - d / 40 mm, d = 20, 10, 0, 10, 20 mm
        [0.5, 0.75, 1.0, 0.75, 0.5]
        >>> float(encode_channel([], (2, 2, 2), (1.0, 1.0, 1.0), "gauss").max())
        0.0
    """
    out = np.zeros(tuple(shape), np.float32)
    reach = reach_voxels(encoding, spacing)
    for point in points:
        box = tuple(
            slice(max(int(p) - r, 0), min(int(p) + r + 1, n))
            for p, r, n in zip(point, reach, shape, strict=True)
        )
        axes = np.ogrid[box]
        d2 = sum(
            ((a - int(p)) * float(s)) ** 2 for a, p, s in zip(axes, point, spacing, strict=True)
        )
        np.maximum(out[box], _bump(np.asarray(d2, np.float64), encoding), out=out[box])
    return out


def encode_clicks(
    tumor: Sequence[Sequence[int]],
    background: Sequence[Sequence[int]],
    shape: Sequence[int],
    spacing: Sequence[float],
    encoding: str,
) -> np.ndarray:
    """The two click channels (2, *shape), float32: tumor clicks, background clicks."""
    _reach_mm(encoding)  # refuses an unknown encoding
    return np.stack([encode_channel(points, shape, spacing, encoding)
                     for points in (tumor, background)])  # fmt: skip
