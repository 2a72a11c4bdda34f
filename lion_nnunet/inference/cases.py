"""Prediction cases: what ``lion predict -i`` reads, and the PET DICOM series found as cases.

A low module: predict.py, suv.py's callers and the API import :class:`Case` from here (suv.py and
predict.py must not import each other for a dataclass).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import SimpleITK as sitk

from lion_nnunet.case_ids import study_case_ids
from lion_nnunet.errors import LionError

from .dicom_index import index_dicom, pet_study_folders
from .suv import check_static_pet, read_suv_series

if TYPE_CHECKING:
    from lion_nnunet.interactive.prompt import Prompt

log = logging.getLogger(__name__)


@dataclass
class Case:
    """One input case: channel files (``_0000`` = PET in SUV) or a loader (DICOM -> SUV image).

    ``prompt`` is what a reader gave for the case (``lion predict --clicks``: its click file,
    :class:`lion_nnunet.interactive.prompt.Prompt`), or None: the one way interactions enter a
    prediction.
    """

    case_id: str
    files: list[Path] = field(default_factory=list)
    loader: Callable[[], sitk.Image] | None = None
    source: str = ""
    dicom_files: list[Path] = field(default_factory=list)
    prompt: Prompt | None = None


def find_pet_series(root: str | Path) -> list[Case]:
    """Every PET series under ``root`` as a prediction case (loaded and converted lazily).

    Series are found as ``lion convert dicom`` finds them (:func:`index_dicom`): PET image series
    (not secondary-capture MIPs); a non-attenuation-corrected series is skipped when its study has
    an attenuation-corrected one, refused otherwise. Case id: the one ``lion convert dicom``
    followed by ``lion convert autopet`` gives the same study (``<PatientID>``, or
    ``<PatientID>_<study folder>`` for a patient with several PET studies; sanitised, see
    :mod:`lion_nnunet.case_ids`). A dynamic/gated or multi-frame series is skipped with a warning
    naming its folder and reason, as ``lion convert dicom`` refuses it; raises when DICOM files
    exist but none is PET, or when every PET series is refused.
    """
    root = Path(root)
    tree = index_dicom(root)
    studies = [series for patient in tree.values() for series in patient.values()]
    modalities = {s.modality or "?" for series in studies for s in series}
    pets = []
    for series in studies:
        candidates = [s for s in series if s.is_pet_image]
        corrected = [s for s in candidates if s.attenuation_corrected]
        for s in candidates:
            if not s.attenuation_corrected and not corrected:
                raise LionError(
                    f"{s.folder}: PET is not attenuation corrected (CorrectedImage lacks ATTN); "
                    "give the attenuation-corrected series"
                )
        pets += corrected
    if not pets and modalities:
        raise LionError(
            f"{root}: DICOM series of modality {', '.join(sorted(modalities))} but no PET (PT) "
            "series; give the folder of a PET series"
        )
    top = Path("/studies")  # the folders lion convert dicom would write, under a stand-in root
    folders = {uid: top / rel for uid, rel in pet_study_folders(tree).items()}
    ids = study_case_ids(top, folders.values())
    cases, refused = [], []
    for series in pets:
        try:
            check_static_pet(series.header, series.folder)
        except LionError as e:  # as lion convert dicom: refuse this series, keep the others
            refused.append(str(e))
            log.warning("%s", e)
            continue
        cases.append(
            Case(
                ids[folders[series.uid]][0],
                loader=lambda f=series.files: read_suv_series(f),
                source=str(series.folder),
                dicom_files=series.files,
            )
        )
    if refused and not cases:
        raise LionError(refused[0] if len(refused) == 1 else f"{root}: " + "; ".join(refused))
    return cases
