"""PET maximum-intensity projections with the tumor overlaid: PNGs a person reads at a glance.

Arrays are numpy (z, y, x) with spacing (z, y, x) in mm. For an image with identity direction
(LPS), z runs feet -> head, y anterior -> posterior and x right -> left of the patient. The
coronal MIP projects along y (numpy axis 1) and the sagittal MIP along x (numpy axis 2); both are
drawn head up, with the pixel aspect taken from the spacing, and marked with the patient's
directions (coronal: R on the left as in radiology, L on the right; sagittal: A left, P right;
H at the top, F at the bottom). Images with another direction are first reoriented to LPS
(:func:`lps_arrays`). The grey window is fixed (default SUV 0-10, :data:`DEFAULT_WINDOW`), not
scaled per patient, so the same SUV looks the same in every picture; it is printed in the title.

Reusable by other commands: :func:`mip`, :func:`mask_mip`, :func:`draw_mip` and
:func:`save_mip_png`.

Examples:
    >>> import numpy as np
    >>> mip(np.arange(8.0).reshape(2, 2, 2), axis=1).tolist()
    [[2.0, 3.0], [6.0, 7.0]]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lion_nnunet.io import atomic_path

CORONAL_AXIS = 1
SAGITTAL_AXIS = 2
#: SUV shown white .. black unless a window is given (FDG's, see options.MIP_WINDOWS).
DEFAULT_WINDOW = (0.0, 10.0)
#: Marks (left, right) of the image columns per projection axis, for an LPS image.
SIDE_MARKS = {CORONAL_AXIS: ("R", "L"), SAGITTAL_AXIS: ("A", "P")}
TUMOR_RGBA = (0.9, 0.05, 0.05, 0.75)
ORGAN_RGBA = (0.25, 0.55, 0.85, 0.22)


def mip(array: np.ndarray, axis: int) -> np.ndarray:
    """Maximum-intensity projection of a (z, y, x) array along ``axis`` (NaN ignored)."""
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating) and np.isnan(array).any():
        return np.nanmax(array, axis=axis)
    return array.max(axis=axis)


def mask_mip(mask: np.ndarray, axis: int) -> np.ndarray:
    """Boolean projection: True where any voxel along ``axis`` is in the mask."""
    return np.asarray(mask).astype(bool).any(axis=axis)


def lps_arrays(reference, *arrays: np.ndarray | None) -> tuple[list, tuple[float, ...]]:
    """Arrays (z, y, x) on ``reference``'s grid reoriented to LPS, and their spacing (z, y, x) mm.

    A pure permutation and flip of axes (``SimpleITK.DICOMOrient``); None stays None. For an
    image whose direction is already the identity the arrays are returned as they are.
    """
    import SimpleITK as sitk

    spacing = tuple(float(v) for v in reference.GetSpacing()[::-1])
    if np.allclose(reference.GetDirection(), np.eye(3).ravel()):
        return list(arrays), spacing
    out = []
    for array in arrays:
        if array is None:
            out.append(None)
            continue
        image = sitk.GetImageFromArray(np.asarray(array))
        image.CopyInformation(reference)
        lps = sitk.DICOMOrient(image, "LPS")
        out.append(sitk.GetArrayFromImage(lps))
        spacing = tuple(float(v) for v in lps.GetSpacing()[::-1])
    return out, spacing


def window_text(window: tuple[float, float]) -> str:
    """``"SUV 0-10"``: how a window is named in titles."""
    return f"SUV {window[0]:g}-{window[1]:g}"


def _aspect(spacing_zyx: tuple[float, float, float], axis: int) -> float:
    """imshow aspect (row height / column width) of a projection of (z, y, x) along ``axis``."""
    z, y, x = spacing_zyx
    return z / (x if axis == CORONAL_AXIS else y)


def draw_mip(
    ax,
    pet: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    axis: int,
    tumor: np.ndarray | None = None,
    organs: np.ndarray | None = None,
    window: tuple[float, float] = DEFAULT_WINDOW,
    title: str = "",
    marks: bool = True,
) -> None:
    """Draw one MIP on a matplotlib axes: inverted grey PET, organs muted blue, tumor red.

    Args:
        ax: matplotlib axes.
        pet: PET in SUV, (z, y, x).
        spacing_zyx: voxel spacing (z, y, x) in mm.
        axis: CORONAL_AXIS (1) or SAGITTAL_AXIS (2).
        tumor: optional binary tumor mask (z, y, x).
        organs: optional organ label map or mask (z, y, x), drawn faintly.
        window: SUV (low, high) shown white .. black, the same for every patient.
        title: axes title.
        marks: write the patient's directions at the edges (the arrays must be LPS).
    """
    image = np.nan_to_num(mip(pet, axis))[::-1]  # head up
    aspect = _aspect(spacing_zyx, axis)
    ax.imshow(image, cmap="gray_r", vmin=window[0], vmax=window[1], aspect=aspect,
              interpolation="nearest")  # fmt: skip
    for mask, rgba in ((organs, ORGAN_RGBA), (tumor, TUMOR_RGBA)):
        if mask is None:
            continue
        proj = mask_mip(mask, axis)[::-1]
        if proj.any():
            overlay = np.zeros((*proj.shape, 4), dtype=np.float32)
            overlay[proj] = rgba
            ax.imshow(overlay, aspect=aspect, interpolation="nearest")
    if marks:
        style = {"transform": ax.transAxes, "fontsize": 9, "color": "tab:blue",
                 "fontweight": "bold"}  # fmt: skip
        left, right = SIDE_MARKS[axis]
        ax.text(0.02, 0.5, left, ha="left", va="center", **style)
        ax.text(0.98, 0.5, right, ha="right", va="center", **style)
        ax.text(0.5, 0.99, "H", ha="center", va="top", **style)
        ax.text(0.5, 0.01, "F", ha="center", va="bottom", **style)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def save_mip_png(
    pet: np.ndarray,
    tumor: np.ndarray | None,
    organs: np.ndarray | None,
    spacing: tuple[float, float, float],
    path: str | Path,
    title: str = "",
    window: tuple[float, float] = DEFAULT_WINDOW,
    dpi: int = 110,
) -> Path:
    """Write a PNG with the coronal and sagittal PET MIPs side by side, tumor overlaid (atomic).

    Args:
        pet: PET in SUV, numpy (z, y, x).
        tumor: binary tumor mask (z, y, x) or None.
        organs: organ label map/mask (z, y, x) or None; drawn muted so the tumor stands out.
        spacing: voxel spacing (z, y, x) in mm.
        path: output .png.
        title: figure title (e.g. case id and TMTV).
        window: SUV (low, high) shown white .. black (see :func:`draw_mip`); printed in the title.
        dpi: resolution.
    """
    from matplotlib.figure import Figure  # not pyplot: thread-safe, no global state
    from matplotlib.patches import Patch

    spacing = tuple(float(s) for s in spacing)
    z_mm = pet.shape[0] * spacing[0]
    width_mm = pet.shape[2] * spacing[2] + pet.shape[1] * spacing[1]
    height = 6.0
    fig = Figure(figsize=(max(3.5, height * width_mm / z_mm + 0.6), height))
    axes = fig.subplots(
        1, 2, gridspec_kw={"width_ratios": [pet.shape[2] * spacing[2], pet.shape[1] * spacing[1]]}
    )
    draw_mip(axes[0], pet, spacing, CORONAL_AXIS, tumor, organs, window, "coronal MIP")
    draw_mip(axes[1], pet, spacing, SAGITTAL_AXIS, tumor, organs, window, "sagittal MIP")
    handles = [Patch(color=TUMOR_RGBA, label="tumor")]
    if organs is not None:
        handles.append(Patch(color=(*ORGAN_RGBA[:3], 0.5), label="organs"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    shown = f"{window_text(window)} (fixed window)"
    fig.suptitle(f"{title}\n{shown}" if title else shown, fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return Path(path)
