"""Read TotalSegmentator outputs, map them to LION organ labels, and put them on the PET grid.

Accepted organ sources for one case (what TotalSegmentator v2 writes):

* a folder of per-class binary masks ``<class_name>.nii.gz`` (default output; several tasks may
  share the folder), or
* multi-label files (``--ml``) with TotalSegmentator v2 ids: ``total.nii.gz`` (or any file name
  for the 'total' task) and, for PSMA, a second file from ``-ta head_glands_cavities``. The task of
  a multi-label file is taken from its name when it names a task, else it is 'total'.

Masks usually live on the CT grid; they are resampled onto the PET grid with nearest neighbour in
physical space (SimpleITK), and refused when the two grids do not overlap.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError
from lion_nnunet.io import geometry_mismatch, image_to_array, read_image
from lion_nnunet.labels import TOTALSEG_TASKS, LabelSet

log = logging.getLogger(__name__)

NIFTI = (".nii.gz", ".nii")


def _stem(path: Path) -> str:
    name = path.name
    for ext in NIFTI:
        if name.endswith(ext):
            return name[: -len(ext)]
    return path.stem


def _task_of_file(path: Path) -> str:
    stem = _stem(path)
    for task in TOTALSEG_TASKS:
        if stem == task or stem.endswith("_" + task) or stem.startswith(task + "_"):
            return task
    return "total"


def organ_files(sources: list[Path], label_set: LabelSet) -> list[tuple[Path, dict[int, int]]]:
    """Resolve organ sources to (file, {value in file -> LION label}) pairs.

    Args:
        sources: folders of per-class masks and/or multi-label files.
        label_set: the LION label set that decides which classes are used.

    Raises:
        LionError: a source is missing, or none of the label set's classes is found.
    """
    by_name = label_set.totalseg_lookup()
    found: list[tuple[Path, dict[int, int]]] = []
    for src in sources:
        if src.is_dir():
            ml_files = [src / f"{t}{ext}" for t in TOTALSEG_TASKS for ext in NIFTI]
            ml_files = [f for f in ml_files if f.is_file()]
            if ml_files:  # a folder holding TotalSegmentator --ml outputs
                found += [(f, label_set.totalseg_id_lookup(_task_of_file(f))) for f in ml_files]
                continue
            for (task, name), label in by_name.items():
                for ext in NIFTI:
                    f = src / f"{name}{ext}"
                    if f.is_file():
                        found.append((f, {1: label}))
                        break
                else:
                    log.debug("%s: no mask for %s/%s", src, task, name)
        elif src.is_file():
            found.append((src, label_set.totalseg_id_lookup(_task_of_file(src))))
        else:
            raise LionError(f"{src}: organ label file or folder not found")
    if not any(mapping for _, mapping in found):
        names = ", ".join(sorted({n for _, n in by_name}))
        raise LionError(
            f"{'; '.join(map(str, sources))}: no TotalSegmentator class of the "
            f"{label_set.tracer} label set found (expected <class>.nii.gz masks such as {names}, "
            "or multi-label files total.nii.gz / head_glands_cavities.nii.gz)"
        )
    return found


def _physical_bounds(img: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    size = np.array(img.GetSize()) - 1
    corners = [
        img.TransformContinuousIndexToPhysicalPoint([float(c) for c in (i, j, k)])
        for i in (0, size[0])
        for j in (0, size[1])
        for k in (0, size[2])
    ]
    pts = np.array(corners)
    return pts.min(0), pts.max(0)


def check_overlap(reference: sitk.Image, moving: sitk.Image, where: Path) -> None:
    """Refuse when ``moving`` does not overlap ``reference`` in physical space."""
    lo_r, hi_r = _physical_bounds(reference)
    lo_m, hi_m = _physical_bounds(moving)
    overlap = np.minimum(hi_r, hi_m) - np.maximum(lo_r, lo_m)
    if (overlap <= 0).any():
        raise LionError(
            f"{where}: organ mask does not overlap the PET in physical space (organ box "
            f"{np.round(lo_m, 1).tolist()}..{np.round(hi_m, 1).tolist()} mm, PET box "
            f"{np.round(lo_r, 1).tolist()}..{np.round(hi_r, 1).tolist()} mm); was it made from "
            "this patient's CT?"
        )


def on_pet_grid(image: sitk.Image, pet: sitk.Image, where: Path) -> sitk.Image:
    """``image`` on the PET grid: unchanged when grids match, else nearest-neighbour resampled."""
    if geometry_mismatch(pet, image) is None:
        return image
    check_overlap(pet, image, where)
    return sitk.Resample(
        image, pet, sitk.Transform(), sitk.sitkNearestNeighbor, 0, image.GetPixelID()
    )


def organ_label_map(sources: list[Path], pet: sitk.Image, label_set: LabelSet) -> np.ndarray:
    """LION organ labels (uint8, numpy (z, y, x) on the PET grid; 0 = no organ).

    Where TotalSegmentator classes overlap (they should not), the class listed later in the label
    set wins.
    """
    out = np.zeros(pet.GetSize()[::-1], dtype=np.uint8)
    pairs = organ_files(sources, label_set)
    lut_size = 256
    for path, mapping in pairs:
        if not mapping:
            continue
        img = read_image(path, "organ label")
        if img.GetDimension() != 3:
            raise LionError(
                f"{path}: organ label image has {img.GetDimension()} dimensions, expected 3"
            )
        arr = image_to_array(on_pet_grid(sitk.Cast(img, sitk.sitkUInt16), pet, path))
        if arr.max(initial=0) >= lut_size:
            lut_size = int(arr.max()) + 1
        lut = np.zeros(lut_size, dtype=np.uint8)
        for value, label in mapping.items():
            if value < lut_size:
                lut[value] = label
        mapped = lut[arr]
        np.copyto(out, mapped, where=mapped > 0)
    return out
