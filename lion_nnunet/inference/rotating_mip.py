"""A rotating PET MIP with the tumor overlaid, as an animated GIF (lionz's ``-g`` habit).

The PET (SUV) and the tumor mask are resampled to ``spacing_mm`` isotropic voxels, rotated about
the patient's head-feet axis in ``step_deg`` steps and projected front to back (coronal MIP at
angle 0); each frame shows the PET in inverted grey (a fixed SUV window, default 0-10 ->
white..black, the same for every patient) with the tumor's projection in red, head up. Arrays are
numpy (z, y, x), spacing (z, y, x) in mm; give them LPS-oriented
(:func:`lion_nnunet.inference.pictures.lps_arrays`).

Examples:
    >>> import numpy as np
    >>> frames = rotating_mip_frames(np.ones((8, 8, 8)), np.zeros((8, 8, 8)), (4, 4, 4), 90)
    >>> len(frames), frames[0].shape
    (4, (8, 8, 3))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from lion_nnunet.errors import LionError
from lion_nnunet.io import atomic_path

from .pictures import DEFAULT_WINDOW, MIN_HEIGHT_PX, captioned, window_text

TUMOR_RGB = np.array([230, 13, 13], dtype=np.float32)
TUMOR_ALPHA = 0.75


def rotating_mip_frames(
    suv: np.ndarray,
    tumor: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    step_deg: float = 15.0,
    spacing_mm: float = 4.0,
    window: tuple[float, float] = DEFAULT_WINDOW,
) -> list[np.ndarray]:
    """RGB frames (rows = head..feet, columns, 3; uint8) of the rotating MIP, one per angle.

    ``window``: SUV (low, high) shown white .. black.
    """
    if not 0 < step_deg <= 180:
        raise LionError(f"rotation step {step_deg} deg: expected 0 < step <= 180")
    if suv.shape != tumor.shape:
        raise LionError(f"SUV {suv.shape} and tumor mask {tumor.shape} differ in shape")
    zoom = [float(s) / spacing_mm for s in spacing_zyx]
    pet = ndimage.zoom(np.nan_to_num(np.asarray(suv, dtype=np.float32)), zoom, order=1)
    mask = ndimage.zoom(np.asarray(tumor, dtype=np.uint8), zoom, order=0)
    low, high = window
    frames = []
    for angle in np.arange(0.0, 360.0, step_deg):
        if angle:
            p = ndimage.rotate(pet, angle, axes=(1, 2), reshape=False, order=1)
            m = ndimage.rotate(mask, angle, axes=(1, 2), reshape=False, order=0)
        else:
            p, m = pet, mask
        grey = 255.0 * (1.0 - np.clip((p.max(axis=1) - low) / (high - low), 0.0, 1.0))
        rgb = np.repeat(grey[..., None], 3, axis=-1)
        hit = m.any(axis=1)
        rgb[hit] = (1 - TUMOR_ALPHA) * rgb[hit] + TUMOR_ALPHA * TUMOR_RGB
        frames.append(rgb[::-1].astype(np.uint8))  # z runs feet -> head: flip to head up
    return frames


def save_rotating_mip(
    suv: np.ndarray,
    tumor: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    path: str | Path,
    step_deg: float = 15.0,
    frame_ms: int = 120,
    spacing_mm: float = 4.0,
    window: tuple[float, float] = DEFAULT_WINDOW,
) -> Path:
    """Write the rotating MIP as a looping GIF (atomic); see :func:`rotating_mip_frames`.

    The frames (``spacing_mm`` square pixels) are enlarged bilinearly to at least
    :data:`~lion_nnunet.inference.pictures.MIN_HEIGHT_PX` pixels high, under a caption that
    states the SUV window.
    """
    from PIL import Image

    raw = rotating_mip_frames(suv, tumor, spacing_zyx, step_deg, spacing_mm, window)
    height = max(MIN_HEIGHT_PX, raw[0].shape[0])
    size = (max(1, round(raw[0].shape[1] * height / raw[0].shape[0])), height)
    lines = [f"rotating MIP, {window_text(window)}", "fixed window, white..black, tumor red"]
    frames = [
        captioned([np.asarray(Image.fromarray(f).resize(size, Image.Resampling.BILINEAR))],
                  lines, [None])
        for f in raw
    ]  # fmt: skip
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=frame_ms, loop=0)  # fmt: skip
    return Path(path)
