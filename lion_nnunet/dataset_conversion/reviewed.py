"""The cases a reader accepted or corrected in ``lion review``, as a cohort to convert.

``lion convert reviews`` builds an nnU-Net raw dataset from a prediction folder and its review
(``reviews.csv``, :mod:`lion_nnunet.review.reviews`), so a model can be fine-tuned on what
readers confirmed or fixed. Which cases, and which mask of each:

* decision ``accept``: the mask the reader saw, i.e. ``tumor_corrected.nii.gz`` where the case
  was corrected in ``lion review --serve``, else the prediction ``tumor.nii.gz``;
* decision ``corrected``: ``tumor_corrected.nii.gz`` (a row ``corrected`` without that file is a
  problem reported with the others);
* ``reject``, an empty decision (a comment alone) and cases without a row: left out;
* an accepted case with a rejected lesion (``lesions`` column, e.g. ``2:reject``) is left out
  too: its mask holds a lesion the reader called wrong; correct it instead.

The PET of each case (in SUV) is ``--pet``'s ``<case>_0000.nii.gz`` or ``<case>.nii.gz``, else
the case folder's ``suv.nii.gz`` (``lion predict --save-suv``), else the report's ``input`` when
it is a NIfTI file. Organ labels come from ``--organs`` (TotalSegmentator outputs
``<organs>/<case_id>/`` or ``<organs>/<case_id>.nii.gz``, as ``lion convert autopet`` reads
them), else from the case folder's ``organs.nii.gz`` and ``organs.json`` (the model's organ
prediction, ``lion predict --save-organs``); the merge (tumor wins over organs) is the
converter's own (:func:`lion_nnunet.dataset_conversion.raw_dataset.convert_cohort`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from lion_nnunet.errors import LionError

from .raw_dataset import CaseSource

log = logging.getLogger(__name__)

#: Decisions of reviews.csv whose case goes into the dataset.
KEPT = ("accept", "corrected")


@dataclass
class ReviewedCohort:
    """The cases to convert and what was left out, by reason (case ids)."""

    cases: list[CaseSource]
    corrected: list[str] = field(default_factory=list)
    left_out: dict[str, list[str]] = field(default_factory=dict)


def _pet(folder: Path, case_id: str, pet_dir: Path | None) -> Path | None:
    from lion_nnunet.analysis.evaluate import find_pet

    if pet_dir is not None:
        found = find_pet(pet_dir, case_id)
        if found is not None:
            return found
    if (folder / "suv.nii.gz").is_file():
        return folder / "suv.nii.gz"
    try:
        source = json.loads((folder / "report.json").read_text()).get("input")
    except (OSError, ValueError, AttributeError):
        source = None
    if isinstance(source, str) and source.endswith((".nii", ".nii.gz")) and Path(source).is_file():
        return Path(source)
    return None


def _organs(folder: Path, case_id: str, organs_dir: Path | None) -> list[Path]:
    if organs_dir is not None:
        for candidate in (organs_dir / case_id, organs_dir / f"{case_id}.nii.gz"):
            if candidate.exists():
                return [candidate]
        return [organs_dir / case_id]  # reported missing by the converter's validation
    return [folder / "organs.nii.gz"]


def reviewed_cohort(
    pred_dir: str | Path,
    reviews_csv: str | Path,
    pet_dir: str | Path | None = None,
    organs_dir: str | Path | None = None,
    with_organs: bool = True,
) -> ReviewedCohort:
    """The accepted and corrected cases of ``pred_dir`` per ``reviews_csv`` (module docstring).

    Raises:
        LionError: no reviews.csv, a reviewed case with no case folder, PET or corrected mask
            (every problem listed together), or nothing accepted or corrected.
    """
    from lion_nnunet.inference.corrected import CORRECTED, case_mask
    from lion_nnunet.review.cases import case_folders
    from lion_nnunet.review.reviews import read_reviews

    reviews_csv = Path(reviews_csv)
    if not reviews_csv.is_file():
        raise LionError(f"{reviews_csv}: reviews.csv not found; give the gallery's reviews.csv "
                        "(lion review -o GALLERY writes GALLERY/reviews.csv)")  # fmt: skip
    rows = read_reviews(reviews_csv)
    folders = {}
    for folder in case_folders(pred_dir):
        report = json.loads((folder / "report.json").read_text())
        folders[str(report.get("case_id") or folder.name)] = folder
    pet_dir = Path(pet_dir) if pet_dir is not None else None
    organs_dir = Path(organs_dir) if organs_dir is not None else None
    out = ReviewedCohort(cases=[])
    problems = []
    for case_id in sorted(set(folders) | set(rows)):
        row = rows.get(case_id, {})
        decision = row.get("decision") or ""
        if decision not in KEPT:
            out.left_out.setdefault(decision or "not decided", []).append(case_id)
            continue
        folder = folders.get(case_id)
        if folder is None:
            problems.append(f"{case_id}: {decision} in {reviews_csv.name} but no case folder "
                            f"{Path(pred_dir) / case_id}/report.json")  # fmt: skip
            continue
        if "reject" in (row.get("lesions") or ""):
            out.left_out.setdefault("accepted with rejected lesions", []).append(case_id)
            continue
        mask, corrected = case_mask(folder, use_corrected=True)
        if decision == "corrected" and not corrected:
            problems.append(f"{folder}: corrected in {reviews_csv.name} but no {CORRECTED}")
            continue
        pet = _pet(folder, case_id, pet_dir)
        if pet is None:
            problems.append(f"{case_id}: no PET (looked in {pet_dir or 'no --pet'}, "
                            f"{folder / 'suv.nii.gz'}, report.json's input); give --pet "
                            "FOLDER (the images the case was predicted from)")  # fmt: skip
            continue
        organs = _organs(folder, case_id, organs_dir) if with_organs else []
        out.cases.append(CaseSource(case_id=case_id, pet=pet, tumor=mask, organs=organs))
        if corrected:
            out.corrected.append(case_id)
    if problems:
        listed = "\n  - ".join(problems)
        raise LionError(f"{len(problems)} problem(s) in the review; nothing was written:\n"
                        f"  - {listed}")  # fmt: skip
    if not out.cases:
        raise LionError(
            f"{reviews_csv}: no case of {pred_dir} is accepted or corrected "
            f"({', '.join(f'{k}: {len(v)}' for k, v in out.left_out.items()) or 'no rows'}); "
            "review the cases first (lion review)"
        )
    return out
