"""PET maximum-intensity projections with the tumor overlaid: PNGs a person reads at a glance.

Arrays are numpy (z, y, x) with spacing (z, y, x) in mm. For an image with identity direction
(LPS), z runs feet -> head, y anterior -> posterior and x right -> left of the patient. The
coronal MIP projects along y (numpy axis 1) and the sagittal MIP along x (numpy axis 2); both are
drawn head up, with the pixel aspect taken from the spacing.

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
    vmax: float | None = None,
    title: str = "",
) -> None:
    """Draw one MIP on a matplotlib axes: inverted grey PET, organs muted blue, tumor red.

    Args:
        ax: matplotlib axes.
        pet: PET in SUV, (z, y, x).
        spacing_zyx: voxel spacing (z, y, x) in mm.
        axis: CORONAL_AXIS (1) or SAGITTAL_AXIS (2).
        tumor: optional binary tumor mask (z, y, x).
        organs: optional organ label map or mask (z, y, x), drawn faintly.
        vmax: SUV shown as black (default: the larger of 5 and the 99.5th percentile of the MIP).
        title: axes title.
    """
    image = np.nan_to_num(mip(pet, axis))[::-1]  # head up
    if vmax is None:
        vmax = max(5.0, float(np.percentile(image, 99.5)))
    aspect = _aspect(spacing_zyx, axis)
    ax.imshow(image, cmap="gray_r", vmin=0.0, vmax=vmax, aspect=aspect, interpolation="nearest")
    for mask, rgba in ((organs, ORGAN_RGBA), (tumor, TUMOR_RGBA)):
        if mask is None:
            continue
        proj = mask_mip(mask, axis)[::-1]
        if proj.any():
            overlay = np.zeros((*proj.shape, 4), dtype=np.float32)
            overlay[proj] = rgba
            ax.imshow(overlay, aspect=aspect, interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()


def save_mip_png(
    pet: np.ndarray,
    tumor: np.ndarray | None,
    organs: np.ndarray | None,
    spacing: tuple[float, float, float],
    path: str | Path,
    title: str = "",
    vmax: float | None = None,
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
        vmax: SUV shown as black (see :func:`draw_mip`).
        dpi: resolution.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    spacing = tuple(float(s) for s in spacing)
    if vmax is None:
        vmax = max(5.0, float(np.percentile(np.nan_to_num(mip(pet, CORONAL_AXIS)), 99.5)))
    z_mm = pet.shape[0] * spacing[0]
    width_mm = pet.shape[2] * spacing[2] + pet.shape[1] * spacing[1]
    height = 6.0
    fig, axes = plt.subplots(
        1, 2, figsize=(max(3.5, height * width_mm / z_mm + 0.6), height),
        gridspec_kw={"width_ratios": [pet.shape[2] * spacing[2], pet.shape[1] * spacing[1]]},
    )  # fmt: skip
    draw_mip(axes[0], pet, spacing, CORONAL_AXIS, tumor, organs, vmax, "coronal MIP")
    draw_mip(axes[1], pet, spacing, SAGITTAL_AXIS, tumor, organs, vmax, "sagittal MIP")
    handles = [Patch(color=TUMOR_RGBA, label="tumor")]
    if organs is not None:
        handles.append(Patch(color=(*ORGAN_RGBA[:3], 0.5), label="organs"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(f"{title}\nSUV 0-{vmax:.1f}" if title else f"SUV 0-{vmax:.1f}", fontsize=10)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return Path(path)
