"""Simulated clicks from a ground truth: the autoPET IV robot user and an error-driven reader.

:func:`robot_clicks` follows the official autoPET IV simulator (lab-midas/autoPETCTIV,
``clicks/simulate_clicks.py``) step by step, so that the same seed gives the same clicks
(checked against that script's own output in ``tests/test_interactive_simulate.py``):

1. ``np.random.RandomState(seed)`` (the script calls ``np.random.seed(42)`` per study).
2. Tumor: 26-connected components of the tumor mask, numbered in the order their first voxel
   is met scanning i fastest, then j, then k (the official script hands ``cc3d`` the
   Fortran-ordered arrays nibabel returns, and ``cc3d`` numbers components in memory order).
   ``min(budget, n)`` of them are drawn with ``rng.choice(labels, size, replace=False)``; each
   gets a click at its centre, the first maximum (C order of (i, j, k)) of its Euclidean distance
   transform (in voxels, not mm). Until the budget is spent, the drawn components are visited
   again in the same order, each giving a boundary click: ``rng.choice`` among its voxels of
   smallest distance value.
3. Background: voxels above the 99.75th percentile of the PET outside the tumor (numpy's linear
   interpolation), 26-connected, drawn and clicked at their centres in the same way. The
   script's boundary step for background differs from the tumor's: for a component whose
   distance transform varies, it draws a voxel of the whole component; for a flat one (every
   voxel on its border, e.g. a single voxel) it draws a voxel anywhere in the image outside that
   component. Both are kept as they are, as they decide which clicks a seed gives. Where the
   script would then stop with an ``AssertionError`` (the drawn voxel is tumor), this draws
   again among the component's own voxels.

Where there is no high-uptake non-tumor voxel, no background click is given (the script would
loop forever). The official random offsets of clicks (``--center_offset``/``--edge_offset``,
Python's unseeded ``random``) are not offered: they cannot be reproduced.

:func:`next_error_click` is the error-driven reader of ``--from-prediction``.

Arrays here are (i, j, k) = nibabel's axis order (the NIfTI file's x, y, z).
"""

from __future__ import annotations

import logging

import cc3d
import numpy as np
from scipy.ndimage import distance_transform_edt

from lion_nnunet.interactive.clickfile import Clicks, Point

log = logging.getLogger(__name__)

CONNECTIVITY = 26
#: Background clicks go to non-tumor voxels above this percentile of the non-tumor PET.
PERCENTILE = 99.75
DEFAULT_BUDGET = 10
DEFAULT_SEED = 42


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """26-connected components of an (i, j, k) mask, numbered in i-fastest scan order."""
    labels, n = cc3d.connected_components(
        np.asfortranarray(mask, dtype=bool), connectivity=CONNECTIVITY, return_N=True
    )
    return labels, int(n)


def _box(component: np.ndarray) -> tuple[slice, ...]:
    """The component's bounding box grown by one voxel where the image allows.

    The distance transform of the component inside this box equals the one over the whole image:
    the voxel nearest to any component voxel outside it lies in the box (clamp its coordinates).
    """
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        hit = np.flatnonzero(component.any(axis=other))
        box.append(slice(max(hit[0] - 1, 0), min(hit[-1] + 2, component.shape[axis])))
    return tuple(box)


def _distance(component: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray]:
    box = _box(component)
    return box, distance_transform_edt(component[box])


def centre(component: np.ndarray) -> Point:
    """The voxel of a component farthest from its outside (the first such in C order)."""
    box, edt = _distance(component)
    local = np.unravel_index(int(np.argmax(edt)), edt.shape)
    return tuple(int(s.start + v) for s, v in zip(box, local, strict=True))  # type: ignore[return-value]


def _tumor_boundary(component: np.ndarray, rng: np.random.RandomState) -> Point:
    box, edt = _distance(component)
    inside = component[box]
    candidates = np.argwhere(inside & (edt == edt[inside].min()))
    pick = candidates[rng.choice(candidates.shape[0])]
    return tuple(int(s.start + v) for s, v in zip(box, pick, strict=True))  # type: ignore[return-value]


def _nth_outside(inside: np.ndarray, n: int) -> int:
    """The C-order flat index of the ``n``-th (0-based) voxel not in ``inside`` (sorted flat
    indices): what ``np.argwhere(~component)[n]`` is, without listing the whole image."""
    for index in inside:
        if index > n:
            break
        n += 1
    return n


def _background_boundary(
    component: np.ndarray, tumor: np.ndarray, rng: np.random.RandomState
) -> Point:
    box, edt = _distance(component)
    values = edt[component[box]]
    if values.min() == values.max():  # flat: any voxel outside the component
        inside = np.flatnonzero(component)  # C order, sorted
        flat_index = _nth_outside(inside, int(rng.choice(component.size - inside.size)))
        point = tuple(int(v) for v in np.unravel_index(flat_index, component.shape))
    else:
        candidates = np.argwhere(component)
        point = tuple(int(v) for v in candidates[rng.choice(candidates.shape[0])])
    if tumor[point]:  # where the official script's assertion would stop it
        inside = np.argwhere(component)
        point = tuple(int(v) for v in inside[rng.choice(inside.shape[0])])
        log.info("background boundary click fell on tumor; drawn again inside the component")
    return point  # type: ignore[return-value]


def _clicks_on(mask: np.ndarray, budget: int, rng: np.random.RandomState, boundary) -> list[Point]:
    labels, n = components(mask)
    drawn = rng.choice(np.arange(1, n + 1), size=min(budget, n), replace=False)
    clicks = [centre(labels == label) for label in drawn]
    while len(clicks) < budget and len(drawn):
        for label in drawn:
            clicks.append(boundary(labels == label))
            if len(clicks) == budget:
                break
    return clicks


def robot_clicks(
    tumor: np.ndarray,
    pet: np.ndarray,
    budget: int = DEFAULT_BUDGET,
    seed: int = DEFAULT_SEED,
) -> Clicks:
    """The autoPET IV simulated user's clicks for one study (see the module docstring).

    Args:
        tumor: Tumor mask, boolean, (i, j, k).
        pet: PET in SUV (or any uptake unit), (i, j, k), same shape.
        budget: Clicks of each kind (10 in autoPET IV).
        seed: Seed of the ``np.random.RandomState`` the draws use (the official script: 42).

    Returns:
        ``budget`` tumor clicks (none when the mask is empty) and ``budget`` background clicks
        (fewer only when no non-tumor voxel exceeds the percentile).

    Examples:
        >>> tumor = np.zeros((9, 9, 9), bool); tumor[2:7, 2:7, 2:7] = True
        >>> pet = np.where(tumor, 5.0, 1.0); pet[0, 0, 8] = 9.0
        >>> robot_clicks(tumor, pet, budget=1).tumor
        ((4, 4, 4),)
        >>> robot_clicks(tumor, pet, budget=1).background
        ((0, 0, 8),)
    """
    tumor = np.asarray(tumor, dtype=bool)
    pet = np.asarray(pet, dtype=np.float64)
    if tumor.shape != pet.shape:
        raise ValueError(f"tumor mask {tumor.shape} and PET {pet.shape} differ in shape")
    rng = np.random.RandomState(seed)
    tumor_clicks: list[Point] = []
    if tumor.any():
        tumor_clicks = _clicks_on(tumor, budget, rng, lambda c: _tumor_boundary(c, rng))
    threshold = np.percentile(pet[~tumor], PERCENTILE) if (~tumor).any() else np.inf
    hot = (pet > threshold) & ~tumor
    background: list[Point] = []
    if hot.any():
        background = _clicks_on(hot, budget, rng, lambda c: _background_boundary(c, tumor, rng))
    elif budget:
        log.warning("no non-tumor voxel above the %.2fth percentile: no background clicks",
                    PERCENTILE)  # fmt: skip
    return Clicks(tuple(tumor_clicks), tuple(background))


def next_error_click(tumor: np.ndarray, prediction: np.ndarray) -> tuple[str, Point] | None:
    """The click a reader gives next: the centre of the largest error of the prediction.

    Errors are the 26-connected components of the missed tumor (``tumor & ~prediction``) and of
    the false tumor (``prediction & ~tumor``); the largest by voxel count gets the click, at its
    :func:`centre` (ties: missed tumor first, then scan order). A missed-tumor component gives a
    "tumor" click, a false-tumor component a "background" click. None when the prediction is
    exact.

    Examples:
        >>> gt = np.zeros((8, 8, 8), bool); gt[1:6, 1:6, 1:6] = True
        >>> pred = gt.copy(); pred[1:6, 1:6, 1:4] = False
        >>> next_error_click(gt, pred)
        ('tumor', (2, 2, 2))
    """
    tumor = np.asarray(tumor, dtype=bool)
    prediction = np.asarray(prediction, dtype=bool)
    best: tuple[int, str, np.ndarray] | None = None
    for name, error in (("tumor", tumor & ~prediction), ("background", prediction & ~tumor)):
        if not error.any():
            continue
        labels, n = components(error)
        sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
        largest = int(np.argmax(sizes))
        if best is None or sizes[largest] > best[0]:
            best = (int(sizes[largest]), name, labels == largest + 1)
    if best is None:
        return None
    return best[1], centre(best[2])
