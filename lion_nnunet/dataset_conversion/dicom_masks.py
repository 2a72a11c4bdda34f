"""Tumor masks from DICOM-SEG (highdicom) and RTSTRUCT (pydicom + scikit-image), on the PET grid.

* **RTSTRUCT**: the CLOSED_PLANAR contours of the ROIs whose name matches ``--roi`` are filled on
  the grid of the series the structure set references (PET or CT of the study): a voxel is inside
  when its centre is inside the polygon (``skimage.draw.polygon``); contours of one ROI in the same
  plane are combined by the even-odd rule (an inner contour is a hole, as DICOM RT allows), ROIs
  are united. A mask drawn on the CT grid is then resampled onto the PET grid (linear
  interpolation of the 0/1 mask, kept where >= 0.5: the voxel is mostly inside).
* **DICOM-SEG**: the segments whose SegmentLabel matches ``--roi`` are read with highdicom's
  ``get_volume`` (the frames' own positions, whatever series they were drawn on) and resampled onto
  the PET grid the same way.

Masks are numpy (z, y, x) uint8 0/1 on the PET image's grid.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError

log = logging.getLogger(__name__)

#: ROI / segment names taken as tumor unless ``--roi`` says otherwise (case-insensitive search).
DEFAULT_ROI = r"(?i)tumou?r|lesion|gtv|mtv|malignan|metasta|neoplas"


def on_pet_grid(mask: sitk.Image, pet: sitk.Image) -> np.ndarray:
    """A 0/1 mask image on any grid -> (z, y, x) uint8 on the PET grid (>= 0.5 after linear)."""
    from lion_nnunet.io import geometry_mismatch

    if geometry_mismatch(pet, mask) is None:
        return (sitk.GetArrayFromImage(mask) > 0).astype(np.uint8)
    moved = sitk.Resample(sitk.Cast(mask > 0, sitk.sitkFloat32), pet, sitk.Transform(),
                          sitk.sitkLinear, 0.0, sitk.sitkFloat32)  # fmt: skip
    return (sitk.GetArrayFromImage(moved) >= 0.5).astype(np.uint8)


def rasterise_contours(contours: list[np.ndarray], grid: sitk.Image) -> np.ndarray:
    """Fill closed planar contours ((n, 3) points in mm each) of one ROI on ``grid``: (z, y, x).

    Contours in the same plane are combined by the even-odd rule (holes); planes are united.
    """
    from skimage.draw import polygon

    nx, ny, nz = grid.GetSize()
    origin = np.array(grid.GetOrigin())
    axes = np.array(grid.GetDirection()).reshape(3, 3)  # columns: x, y, z axis directions
    spacing = np.array(grid.GetSpacing())
    planes: dict[tuple[int, float], np.ndarray] = {}
    for points in contours:
        index = ((np.asarray(points, float) - origin) @ axes) / spacing  # continuous (x, y, z)
        k = int(np.rint(index[:, 2].mean()))
        if np.ptp(index[:, 2]) > 0.5:
            raise LionError(
                f"a contour spans {np.ptp(index[:, 2]):.2f} slices; only contours drawn on the "
                "image slices (axial planes) can be filled"
            )
        if not 0 <= k < nz:
            log.warning("contour at slice index %.1f lies outside the image; ignored", k)
            continue
        key = (k, round(float(index[:, 2].mean()), 2))
        plane = planes.setdefault(key, np.zeros((ny, nx), bool))
        rr, cc = polygon(index[:, 1], index[:, 0], shape=(ny, nx))
        filled = np.zeros((ny, nx), bool)
        filled[rr, cc] = True
        plane ^= filled
    mask = np.zeros((nz, ny, nx), bool)
    for (k, _), plane in planes.items():
        mask[k] |= plane
    return mask


def _on_planes(contours: list[np.ndarray], grid: sitk.Image) -> bool:
    """Every contour point lies on a slice plane of ``grid`` (within 0.1 slice), inside it."""
    if not contours:
        return False
    origin = np.array(grid.GetOrigin())
    normal = np.array(grid.GetDirection()).reshape(3, 3)[:, 2]
    k = ((np.concatenate(contours) - origin) @ normal) / grid.GetSpacing()[2]
    return bool(np.all(np.abs(k - np.rint(k)) < 0.1) and k.min() > -0.5
                and k.max() < grid.GetSize()[2] - 0.5)  # fmt: skip


def rtstruct_mask(
    path: Path, grids: dict[str, sitk.Image], pet: sitk.Image, roi: re.Pattern
) -> tuple[np.ndarray, list[str], list[str]]:
    """Tumor mask from an RTSTRUCT: ((z, y, x) uint8 on the PET grid, ROIs taken, all ROIs).

    Args:
        path: the RTSTRUCT file.
        grids: geometry (SimpleITK image) of each image series of the study, by SeriesInstanceUID.
        pet: the PET image (target grid).
        roi: ROI names to take (``re.search``).
    """
    import pydicom

    ds = pydicom.dcmread(path)
    names = {int(r.ROINumber): str(r.ROIName) for r in getattr(ds, "StructureSetROISequence", [])}
    referenced = [
        s.SeriesInstanceUID
        for f in getattr(ds, "ReferencedFrameOfReferenceSequence", [])
        for st in getattr(f, "RTReferencedStudySequence", [])
        for s in getattr(st, "RTReferencedSeriesSequence", [])
    ]
    taken = sorted(n for n in names.values() if roi.search(n))
    if not taken:  # nothing to place: no grid needed (an organs-at-risk structure set, say)
        return np.zeros(pet.GetSize()[::-1], np.uint8), [], sorted(names.values())
    selected = {
        int(item.ReferencedROINumber): [
            np.asarray(c.ContourData, float).reshape(-1, 3)
            for c in getattr(item, "ContourSequence", [])
            if str(getattr(c, "ContourGeometricType", "")).upper() == "CLOSED_PLANAR"
        ]
        for item in getattr(ds, "ROIContourSequence", [])
        if names.get(int(item.ReferencedROINumber), "") in taken
    }
    grid = next((grids[u] for u in referenced if u in grids), None)
    if grid is None:  # no usable reference: the study series whose slice planes hold the contours
        points = [p for contours in selected.values() for p in contours]
        grid = next((g for g in [pet, *grids.values()] if _on_planes(points, g)), None)
    if grid is None:
        raise LionError(
            f"{path}: the RTSTRUCT references series {referenced or 'none'}, which is not among "
            "the study's PET/CT series, and its contours lie on none of their slice planes; put "
            "the referenced image series next to it"
        )
    mask = np.zeros(grid.GetSize()[::-1], bool)
    for number, contours in selected.items():
        try:
            mask |= rasterise_contours(contours, grid)
        except LionError as e:
            raise LionError(f"{path}: ROI {names[number]!r}: {e}") from None
    image = sitk.GetImageFromArray(mask.astype(np.uint8))
    image.CopyInformation(grid)
    return on_pet_grid(image, pet), taken, sorted(names.values())


def seg_mask(
    path: Path, pet: sitk.Image, roi: re.Pattern
) -> tuple[np.ndarray, list[str], list[str]]:
    """Tumor mask from a DICOM-SEG: ((z, y, x) uint8 on the PET grid, segments taken, all)."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    labels = {int(s.SegmentNumber): str(s.SegmentLabel) for s in seg.SegmentSequence}
    numbers = sorted(n for n, label in labels.items() if roi.search(label))
    taken = [labels[n] for n in numbers]
    if not numbers:
        return np.zeros(pet.GetSize()[::-1], np.uint8), [], sorted(labels.values())
    try:
        volume = seg.get_volume(segment_numbers=numbers, combine_segments=False,
                                skip_overlap_checks=True, dtype=np.float32)  # fmt: skip
    except (ValueError, RuntimeError) as e:
        raise LionError(f"{path}: cannot place the SEG frames in a volume ({e})") from None
    array = np.asarray(volume.array)
    if array.ndim == 4:  # one channel per segment: a voxel is tumor in any segment
        array = array.max(axis=-1)
    image = volume.with_array(np.ascontiguousarray(array >= 0.5).astype(np.uint8)).to_simpleitk()
    return on_pet_grid(image, pet), taken, sorted(labels.values())
