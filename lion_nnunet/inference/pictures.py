"""PET maximum-intensity projections with the tumor overlaid: PNGs a person reads at a glance.

Arrays are numpy (z, y, x) with spacing (z, y, x) in mm. For an image with identity direction
(LPS), z runs feet -> head, y anterior -> posterior and x right -> left of the patient. The
coronal MIP projects along y (numpy axis 1) and the sagittal MIP along x (numpy axis 2); both are
drawn head up, resampled to square pixels (mm-isotropic, :func:`mip_rgb`) at least
:data:`MIN_HEIGHT_PX` pixels high whatever the voxel size, and marked with the patient's
directions (coronal: R on the left as in radiology, L on the right; sagittal: A left, P right;
H at the top, F at the bottom). Images with another direction are first reoriented to LPS
(:func:`lps_arrays`). The grey window is fixed (default SUV 0-10, :data:`DEFAULT_WINDOW`), not
scaled per patient, so the same SUV looks the same in every picture; it is printed in the
caption above the picture. Given the case's lesion map (``lesions``: voxel value = report.json's
``lesion_id``), each lesion's number is written beside its projected centre
(:func:`lesion_marks`; the largest :data:`MAX_NUMBERED` lesions), so a reader finds "lesion 3" of
the report and the flag reasons on the picture.

Reusable by other commands: :func:`mip`, :func:`mask_mip`, :func:`mip_rgb`, :func:`captioned`,
:func:`save_mip_png`, :func:`save_single_mip_png` and (matplotlib) :func:`draw_mip`.

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
#: Every MIP picture (PNG and GIF frame) is at least this many pixels high, whatever the voxels.
MIN_HEIGHT_PX = 512
#: Height of one caption line above a picture, and the gap between side-by-side panels (px).
BANNER_LINE_PX = 20
PANEL_GAP_PX = 12
MARK_RGB = (31, 119, 180)
#: Lesion numbers: dark text with a white outline, readable on white and on black.
NUMBER_RGB = (20, 20, 20)
#: At most this many lesions are numbered on a picture, the largest first.
MAX_NUMBERED = 40


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


def picture_pixel_mm(
    shape: tuple[int, ...], spacing_zyx: tuple[float, float, float],
    min_height: int = MIN_HEIGHT_PX,
) -> float:  # fmt: skip
    """Side (mm) of the square pixels of a MIP picture of a (z, y, x) volume.

    The finest voxel spacing, or finer where needed for the head-feet extent to fill
    ``min_height`` rows: a 72-slice phantom at 8 mm becomes 512 rows of 1.125 mm.
    """
    z_mm = shape[0] * float(spacing_zyx[0])
    return min(*(float(s) for s in spacing_zyx), z_mm / min_height)


def mip_rgb(
    pet: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    axis: int,
    tumor: np.ndarray | None = None,
    organs: np.ndarray | None = None,
    window: tuple[float, float] = DEFAULT_WINDOW,
    pixel_mm: float | None = None,
) -> np.ndarray:
    """One MIP as an RGB raster (rows head..feet, uint8) with square pixels of ``pixel_mm``.

    Inverted grey PET in the fixed ``window`` (SUV low white .. high black), resampled
    bilinearly to ``pixel_mm`` x ``pixel_mm`` mm pixels (default :func:`picture_pixel_mm`:
    at least :data:`MIN_HEIGHT_PX` rows); organs muted blue, tumor red (nearest neighbour).
    Arrays (z, y, x), LPS (:func:`lps_arrays`); ``axis`` CORONAL_AXIS or SAGITTAL_AXIS.
    """
    from PIL import Image

    spacing = tuple(float(s) for s in spacing_zyx)
    pixel_mm = pixel_mm or picture_pixel_mm(pet.shape, spacing)
    grey = np.nan_to_num(mip(pet, axis))[::-1].astype(np.float32)  # head up
    column_mm = spacing[2] if axis == CORONAL_AXIS else spacing[1]
    size = (max(1, round(grey.shape[1] * column_mm / pixel_mm)),
            max(1, round(grey.shape[0] * spacing[0] / pixel_mm)))  # fmt: skip
    grey = np.asarray(Image.fromarray(grey, mode="F").resize(size, Image.Resampling.BILINEAR))
    low, high = window
    level = 255.0 * (1.0 - np.clip((grey - low) / (high - low), 0.0, 1.0))
    rgb = np.repeat(level[..., None], 3, axis=-1)
    for mask, rgba in ((organs, ORGAN_RGBA), (tumor, TUMOR_RGBA)):
        if mask is None:
            continue
        proj = Image.fromarray(mask_mip(mask, axis)[::-1].astype(np.uint8) * 255)
        hit = np.asarray(proj.resize(size, Image.Resampling.NEAREST)) > 127
        color = 255.0 * np.asarray(rgba[:3], dtype=np.float64)
        rgb[hit] = (1 - rgba[3]) * rgb[hit] + rgba[3] * color
    return np.round(rgb).astype(np.uint8)


def lesion_marks(
    lesions: np.ndarray, spacing_zyx: tuple[float, float, float], axis: int, pixel_mm: float
) -> list[tuple[int, float, float]]:
    """``(lesion_id, column, row)`` in the pixels of :func:`mip_rgb`'s picture: the projected
    centre (voxel mean) of each lesion of a label map (z, y, x, LPS; 0 = none), the largest
    :data:`MAX_NUMBERED` lesions.

    Examples:
        >>> m = np.zeros((4, 2, 6), np.uint8); m[0, 0, 4:6] = 1  # foot slice, columns 4 and 5
        >>> lesion_marks(m, (1.0, 1.0, 1.0), CORONAL_AXIS, 1.0)  # rows run head (0) .. feet
        [(1, 5.0, 3.5)]
    """
    from scipy import ndimage

    lesions = np.asarray(lesions)
    ids = np.unique(lesions[lesions > 0])
    if not ids.size:
        return []
    sizes = ndimage.sum_labels(np.ones(lesions.shape), lesions, ids)
    ids = ids[np.argsort(-sizes, kind="stable")][:MAX_NUMBERED]
    centres = ndimage.center_of_mass(np.ones(lesions.shape), lesions, ids)
    column = 2 if axis == CORONAL_AXIS else 1
    column_mm = spacing_zyx[column]
    nz = lesions.shape[0]
    return [(int(i), float((c[column] + 0.5) * column_mm / pixel_mm),
             float((nz - c[0] - 0.5) * spacing_zyx[0] / pixel_mm))
            for i, c in zip(ids, centres, strict=True)]  # fmt: skip


def draw_numbers(canvas, marks: list[tuple[int, float, float]], x0: int, y0: int) -> None:
    """Write each lesion number of ``marks`` (:func:`lesion_marks`) on a PIL ``canvas`` whose
    picture starts at pixel (``x0``, ``y0``): just right of the lesion's centre."""
    from PIL import ImageDraw

    draw, font = ImageDraw.Draw(canvas), _font(13)
    for lesion_id, column, row in marks:
        draw.text((x0 + column + 6, y0 + row), str(lesion_id), fill=NUMBER_RGB, font=font,
                  anchor="lm", stroke_width=2, stroke_fill="white")  # fmt: skip


def _font(size: int):
    from PIL import ImageFont

    try:  # matplotlib's own DejaVu Sans: always installed with it
        from matplotlib import font_manager

        return ImageFont.truetype(font_manager.findfont("DejaVu Sans"), size)
    except (OSError, ValueError, ImportError):  # pragma: no cover
        return ImageFont.load_default(size=size)


def banner_height(lines: int) -> int:
    """Pixels of the white caption strip above a picture with ``lines`` lines of text."""
    return BANNER_LINE_PX * lines + 8


def captioned(panels: list[np.ndarray], lines: list[str], marks: list[int | None]):
    """PIL image: the RGB ``panels`` side by side (``PANEL_GAP_PX`` apart, top-aligned) under a
    white caption strip holding ``lines``; panel k gets the patient's directions of projection
    axis ``marks[k]`` (None: no marks)."""
    from PIL import Image, ImageDraw

    top = banner_height(len(lines))
    font, small = _font(BANNER_LINE_PX - 4), _font(14)
    text_width = max((font.getlength(line) for line in lines), default=0.0)
    width = sum(p.shape[1] for p in panels) + PANEL_GAP_PX * (len(panels) - 1)
    width = max(width, int(np.ceil(text_width)) + 12)  # the caption is never cut off
    height = top + max(p.shape[0] for p in panels)
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    for k, line in enumerate(lines):
        draw.text((6, 4 + k * BANNER_LINE_PX), line, fill="black", font=font)
    x = 0
    for panel, axis in zip(panels, marks, strict=True):
        canvas.paste(Image.fromarray(panel), (x, top))
        h, w = panel.shape[:2]
        if axis is not None:
            left, right = SIDE_MARKS[axis]
            for (px, py), text, anchor in (((x + 4, top + h // 2), left, "lm"),
                                           ((x + w - 4, top + h // 2), right, "rm"),
                                           ((x + w // 2, top + 2), "H", "mt"),
                                           ((x + w // 2, top + h - 2), "F", "mb")):  # fmt: skip
                draw.text((px, py), text, fill=MARK_RGB, font=small, anchor=anchor)
        x += w + PANEL_GAP_PX
    return canvas


def _legend(tumor: np.ndarray | None, organs: np.ndarray | None) -> str:
    shown = ["fixed window, white..black"]
    if tumor is not None:
        shown.append("tumor red")
    if organs is not None:
        shown.append("organs blue")
    return ", ".join(shown)


def save_mip_png(
    pet: np.ndarray,
    tumor: np.ndarray | None,
    organs: np.ndarray | None,
    spacing: tuple[float, float, float],
    path: str | Path,
    title: str = "",
    window: tuple[float, float] = DEFAULT_WINDOW,
    lesions: np.ndarray | None = None,
) -> Path:
    """Write a PNG with the coronal and sagittal PET MIPs side by side, tumor overlaid (atomic).

    Both MIPs share square pixels at least :data:`MIN_HEIGHT_PX` rows high
    (:func:`mip_rgb`); the caption above states the title and the SUV window.

    Args:
        pet: PET in SUV, numpy (z, y, x), LPS.
        tumor: binary tumor mask (z, y, x) or None.
        organs: organ label map/mask (z, y, x) or None; drawn muted so the tumor stands out.
        spacing: voxel spacing (z, y, x) in mm.
        path: output .png.
        title: first caption line (e.g. case id and TMTV).
        window: SUV (low, high) shown white .. black, the same for every patient.
        lesions: the lesion label map (z, y, x, LPS; voxel value = report.json's lesion_id) or
            None: each lesion's number is written beside it (:func:`lesion_marks`).
    """
    pixel_mm = picture_pixel_mm(pet.shape, spacing)
    panels = [mip_rgb(pet, spacing, axis, tumor, organs, window, pixel_mm)
              for axis in (CORONAL_AXIS, SAGITTAL_AXIS)]  # fmt: skip
    lines = [title] if title else []
    lines += [f"coronal | sagittal MIP, {window_text(window)}", _legend(tumor, organs)]
    picture = captioned(panels, lines, [CORONAL_AXIS, SAGITTAL_AXIS])
    if lesions is not None:
        x0 = 0
        for panel, axis in zip(panels, (CORONAL_AXIS, SAGITTAL_AXIS), strict=True):
            marks = lesion_marks(lesions, spacing, axis, pixel_mm)
            draw_numbers(picture, marks, x0, banner_height(len(lines)))
            x0 += panel.shape[1] + PANEL_GAP_PX
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return Path(path)


def save_single_mip_png(
    pet: np.ndarray,
    tumor: np.ndarray | None,
    organs: np.ndarray | None,
    spacing: tuple[float, float, float],
    axis: int,
    path: str | Path,
    title: str = "",
    window: tuple[float, float] = DEFAULT_WINDOW,
    lesions: np.ndarray | None = None,
) -> Path:
    """Write one MIP (``axis``: CORONAL_AXIS or SAGITTAL_AXIS) as a PNG, captioned (atomic).

    ``mip_coronal.png`` and ``mip_sagittal.png`` of ``lion predict`` (what ``lion review``
    shows); arguments as :func:`save_mip_png`.
    """
    name = "coronal" if axis == CORONAL_AXIS else "sagittal"
    lines = [title] if title else []
    lines += [f"{name} MIP, {window_text(window)}", _legend(tumor, organs)]
    pixel_mm = picture_pixel_mm(pet.shape, spacing)
    panel = mip_rgb(pet, spacing, axis, tumor, organs, window, pixel_mm)
    picture = captioned([panel], lines, [axis])
    if lesions is not None:
        draw_numbers(picture, lesion_marks(lesions, spacing, axis, pixel_mm), 0,
                     banner_height(len(lines)))  # fmt: skip
    with atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
    return Path(path)
