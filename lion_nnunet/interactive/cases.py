"""``lion clicks simulate``: click files for a folder of ground-truth cases.

One file per case, ``<case_id>_clicks.json`` (the official toolkit's naming), in the simple or
the Grand-Challenge form. Inputs are found as ``lion evaluate`` finds them: ground truth
``GT/<case>.nii.gz`` (tumor label from its dataset.json, else 1; organ classes are background),
PET ``PET/<case>_0000.nii.gz`` or ``PET/<case>.nii.gz`` on the same grid, predictions
``PRED/<case>.nii.gz`` or ``PRED/<case>/tumor.nii.gz``. Every input is checked before any file
is written, and the files are written once every case's clicks are known (a bad case leaves none
behind); an existing click file is kept unless ``overwrite``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.analysis.evaluate import (
    find_pet,
    find_prediction,
    ground_truth_files,
    listing,
    resolve_tumor_label,
)
from lion_nnunet.case_ids import case_id_of_name
from lion_nnunet.errors import LionError
from lion_nnunet.interactive.clickfile import Clicks, read_clicks, write_clicks
from lion_nnunet.interactive.simulate import next_error_click, robot_clicks
from lion_nnunet.io import geometry_mismatch, read_float_image, read_image
from lion_nnunet.labels import TUMOR_LABEL
from lion_nnunet.progress import track

log = logging.getLogger(__name__)


def clicks_name(case_id: str) -> str:
    """The click file of a case: ``<case_id>_clicks.json``."""
    return f"{case_id}_clicks.json"


@dataclass(frozen=True)
class _Case:
    case_id: str
    gt: Path
    pet: Path | None = None
    pred: Path | None = None
    previous: Path | None = None


def ijk(image: sitk.Image) -> np.ndarray:
    """An image's voxels in nibabel's axis order (i, j, k) (SimpleITK's array is (k, j, i))."""
    return sitk.GetArrayViewFromImage(image).transpose(2, 1, 0)


def _same_grid(reference: sitk.Image, image: sitk.Image, path: Path, gt: Path, what: str) -> None:
    diff = geometry_mismatch(reference, image)
    if diff:
        raise LionError(
            f"{path}: the {what} is on another grid than its ground truth {gt} ({diff}); "
            "clicks are voxel indices, so both must share one grid"
        )


def _find_cases(
    gt_dir: Path, pet_dir: Path | None, pred_dir: Path | None, previous_dir: Path | None
) -> list[_Case]:
    """Every ground-truth case with its inputs; one error listing all the missing ones."""
    cases, missing = [], []
    for gt in ground_truth_files(gt_dir):
        name = gt.name[: -len(".nii.gz")]
        case_id = case_id_of_name(name)
        pet = find_pet(pet_dir, name) if pet_dir is not None else None
        pred = find_prediction(pred_dir, name) if pred_dir is not None else None
        previous = None if previous_dir is None else previous_dir / clicks_name(case_id)
        if pet_dir is not None and pet is None:
            missing.append(f"{case_id} (no {case_id}_0000.nii.gz in {pet_dir})")
        if pred_dir is not None and pred is None:
            missing.append(f"{case_id} (no prediction in {pred_dir})")
        if previous is not None and not previous.is_file():
            missing.append(f"{case_id} (no {previous.name} in {previous_dir})")
        cases.append(_Case(case_id, gt, pet, pred, previous))
    if missing:
        raise LionError(f"{len(missing)} input(s) missing: {listing(missing)}")
    return cases


def simulate_folder(
    gt_dir: str | Path,
    out_dir: str | Path,
    pet_dir: str | Path | None = None,
    budget: int = 10,
    seed: int = 42,
    form: str = "simple",
    gt_tumor_label: int | None = None,
    pred_dir: str | Path | None = None,
    pred_tumor_label: int | None = None,
    previous_dir: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[dict]:
    """Write ``out_dir/<case_id>_clicks.json`` for every case of ``gt_dir``.

    Two modes. Without ``pred_dir``: the autoPET IV robot user
    (:func:`~lion_nnunet.interactive.simulate.robot_clicks`; needs ``pet_dir``). With
    ``pred_dir``: the error-driven reader, the clicks of ``previous_dir`` (if given) plus one
    click at the centre of the prediction's largest error
    (:func:`~lion_nnunet.interactive.simulate.next_error_click`).

    Args:
        gt_dir: Ground-truth label maps ``<case>.nii.gz``.
        out_dir: Output folder.
        pet_dir: PET (SUV) images on the ground-truth grid.
        budget: Clicks of each kind (robot user).
        seed: Seed of the robot user's draws (the official simulator's is 42).
        form: "simple" or "gc" (Grand-Challenge "Multiple points").
        gt_tumor_label: Tumor value in the ground truth (default: its dataset.json, else 1).
        pred_dir: Predictions to click on (error-driven mode).
        pred_tumor_label: Tumor value in the predictions (default: their dataset.json, else 1).
        previous_dir: Click files of the steps so far (error-driven mode).
        overwrite: Replace existing click files.
        progress: Show a progress bar.

    Returns:
        One row per case: case_id, file, tumor and background click counts, and in the
        error-driven mode the kind of click added ("tumor", "background" or "none").
    """
    gt_dir, out = Path(gt_dir), Path(out_dir)
    pet_dir = None if pet_dir is None else Path(pet_dir)
    pred_dir = None if pred_dir is None else Path(pred_dir)
    previous_dir = None if previous_dir is None else Path(previous_dir)
    if budget < 0:
        raise LionError(f"--budget {budget}: expected a number of clicks >= 0")
    if pred_dir is None and pet_dir is None:
        raise LionError("the robot user needs the PET (--pet) for its background clicks; "
                        "or pass --from-prediction for error-driven clicks")  # fmt: skip
    if previous_dir is not None and pred_dir is None:
        raise LionError("--clicks (the clicks so far) goes with --from-prediction")
    for folder, what in ((pet_dir, "PET"), (pred_dir, "prediction"), (previous_dir, "click")):
        if folder is not None and not folder.is_dir():
            raise LionError(f"{folder}: {what} folder not found")
    cases = _find_cases(gt_dir, pet_dir, pred_dir, previous_dir)
    existing = [c.case_id for c in cases if (out / clicks_name(c.case_id)).exists()]
    if existing and not overwrite:
        raise LionError(f"{out}: click files exist for {len(existing)} case(s) "
                        f"({listing(existing)}); use --overwrite to replace them")  # fmt: skip
    gt_label = resolve_tumor_label(gt_dir, gt_tumor_label, with_parent=True)
    pred_label = None if pred_dir is None else resolve_tumor_label(pred_dir, pred_tumor_label)
    rows = []
    for case in track(cases, "clicks", len(cases), progress):
        gt_img = read_image(case.gt, "ground truth")
        tumor = ijk(gt_img) == gt_label
        row: dict = {"case_id": case.case_id}
        if pred_dir is None:
            pet_img, _ = read_float_image(case.pet, "PET")
            _same_grid(gt_img, pet_img, case.pet, case.gt, "PET")
            clicks = robot_clicks(tumor, ijk(pet_img), budget, seed)
        else:
            pred_img = read_image(case.pred, "prediction")
            _same_grid(gt_img, pred_img, case.pred, case.gt, "prediction")
            label = TUMOR_LABEL if case.pred.name == "tumor.nii.gz" else pred_label
            clicks = Clicks()
            if case.previous is not None:
                clicks = read_clicks(case.previous, image=gt_img)
            found = next_error_click(tumor, ijk(pred_img) == label)
            row["added"] = "none" if found is None else found[0]
            if found is not None:
                clicks = clicks.added(*found)
        rows.append({**row, "file": str(out / clicks_name(case.case_id)), "clicks": clicks})
    for row in rows:  # after every case succeeded: a bad case leaves no click file behind
        clicks = row.pop("clicks")
        write_clicks(clicks, row["file"], form)
        row.update(tumor=len(clicks.tumor), background=len(clicks.background))
    return rows
