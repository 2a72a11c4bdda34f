"""Read TotalSegmentator outputs, map them to LION organ labels, and put them on the PET grid.

Accepted organ sources for one case (what TotalSegmentator v2 writes):

* a folder of per-class binary masks ``<class_name>.nii.gz`` (default output; several tasks may
  share the folder), or
* multi-label files (``--ml``) with TotalSegmentator v2 ids: ``total.nii.gz`` (or any file name
  for the 'total' task) and, for PSMA, a second file from ``-ta head_glands_cavities``. The task of
  a multi-label file is taken from its name when it names a task, else it is 'total'; or
* a LION organ map: ``organs.nii.gz`` with ``organs.json`` beside it (its ``labels``: organ name
  -> value in the file), as ``lion predict --save-organs`` writes them; organs are matched to
  the label set by name, and it must name every organ of the label set.

Every TotalSegmentator task the label set needs must be there in full (TotalSegmentator writes
every class of a task, an empty mask where the organ is outside the field of view): a missing
file is an error for that case naming the task and the command that makes it; an empty mask is
fine. ``lion organs`` runs exactly the needed tasks.

Masks usually live on the CT grid; they are resampled onto the PET grid with nearest neighbour in
physical space (SimpleITK), and refused when the two grids do not overlap.
"""

from __future__ import annotations

import json
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


def totalseg_command(task: str, out: Path | str, ml: bool = False) -> str:
    """The TotalSegmentator command line that writes ``task``'s output where we read it."""
    if ml:
        return f"TotalSegmentator -i CT.nii.gz -o {Path(out) / task}.nii.gz --ml -ta {task}"
    return f"TotalSegmentator -i CT.nii.gz -o {out} -ta {task}"


def _first_file(folder: Path, name: str) -> Path | None:
    for ext in NIFTI:
        if (folder / f"{name}{ext}").is_file():
            return folder / f"{name}{ext}"
    return None


def lion_organ_names(path: Path) -> dict[str, int] | None:
    """The ``labels`` of the ``<stem>.json`` beside a LION organ map (``organs.nii.gz``), or None
    when ``path`` has none (a TotalSegmentator file)."""
    names = path.parent / f"{_stem(path)}.json"
    if not names.is_file():
        return None
    try:
        labels = json.loads(names.read_text()).get("labels")
    except (OSError, ValueError, AttributeError) as e:
        raise LionError(f"{names}: unreadable organ names ({e})") from None
    if not isinstance(labels, dict):
        raise LionError(f"{names}: no 'labels' object (organ name -> value in {path.name})")
    return {str(k): int(v) for k, v in labels.items()}


def organ_files(sources: list[Path], label_set: LabelSet) -> list[tuple[Path, dict[int, int]]]:
    """Resolve organ sources to (file, {value in file -> LION label}) pairs.

    TotalSegmentator writes every class of a task (an empty mask for an organ outside the field
    of view), so every task the label set needs must be there in full: a missing file is an
    error naming the task and the command that makes it; an empty mask is fine.

    Args:
        sources: folders of per-class masks and/or multi-label files.
        label_set: the LION label set that decides which classes are used.

    Raises:
        LionError: a source is missing, or a needed task's output is missing or incomplete.
    """
    by_name = label_set.totalseg_lookup()
    needed = label_set.tasks()
    found: list[tuple[Path, dict[int, int]]] = []
    covered: set[str] = set()
    problems: list[str] = []
    ml = False  # were multi-label (--ml) outputs given? then suggest that form
    for src in sources:
        if src.is_dir():
            ml_files = [f for t in TOTALSEG_TASKS if (f := _first_file(src, t)) is not None]
            if ml_files:  # a folder holding TotalSegmentator --ml outputs
                ml = True
                for f in ml_files:
                    covered.add(_task_of_file(f))
                    found.append((f, label_set.totalseg_id_lookup(_task_of_file(f))))
                continue
            for task in needed:
                files = {name: _first_file(src, name) for t, name in by_name if t == task}
                absent = sorted(n for n, f in files.items() if f is None)
                if len(absent) == len(files):
                    continue  # the task is not in this folder; maybe in another source
                covered.add(task)
                if absent:
                    problems.append(
                        f"{src}: {', '.join(n + '.nii.gz' for n in absent)} missing from the "
                        f"output of TotalSegmentator task {task!r}, which writes every class "
                        f"(empty ones too; was --roi_subset used?); rerun "
                        f"`{totalseg_command(task, src)}`"
                    )
                found += [(f, {1: by_name[(task, n)]}) for n, f in files.items() if f]
        elif src.is_file() and (named := lion_organ_names(src)) is not None:
            absent = [n for n in label_set.organ_names if n not in named]
            if absent:
                problems.append(
                    f"{src}: its organ names ({_stem(src)}.json beside it) lack "
                    f"{', '.join(absent)} of the {label_set.tracer} label set"
                )
            covered.update(needed)
            found.append((src, {named[n]: label_set.label_of(n) for n in label_set.organ_names
                                if n in named}))  # fmt: skip
        elif src.is_file():
            ml = True
            covered.add(_task_of_file(src))
            found.append((src, label_set.totalseg_id_lookup(_task_of_file(src))))
        else:
            raise LionError(f"{src}: organ label file or folder not found")
    where = "; ".join(map(str, sources))
    folder = next((s for s in sources if s.is_dir()), sources[0].parent if sources else Path())
    for task in needed:
        if task not in covered:
            names = sorted(n for t, n in by_name if t == task)
            problems.append(
                f"{where}: no output of TotalSegmentator task {task!r} (the {label_set.tracer} "
                f"label set needs {', '.join(names)}); TotalSegmentator writes every class of a "
                f"task, empty where an organ is outside the field of view, so the task was not "
                f"run: run `{totalseg_command(task, folder, ml)}` or `lion organs`"
            )
    if problems:
        raise LionError("; ".join(problems))
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
