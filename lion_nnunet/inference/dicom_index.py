"""Find every DICOM series under a folder of any layout, grouped by patient, study and series.

Files are recognised by content (pydicom reads the header; names and extensions do not matter).
One :class:`SeriesInfo` per SeriesInstanceUID, with its files and the first file's header; used by
``lion convert dicom`` and by ``lion predict -i DICOM_ROOT``, so both see the same series.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from lion_nnunet.case_ids import sanitize_case_id
from lion_nnunet.progress import track

log = logging.getLogger(__name__)

PET_IMAGE_SOP = "1.2.840.10008.5.1.4.1.1.128"  # single-frame PET Image Storage
ENHANCED_PET_SOP = "1.2.840.10008.5.1.4.1.1.130"
CT_IMAGE_SOP = "1.2.840.10008.5.1.4.1.1.2"
SEG_SOP = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"


@dataclass
class SeriesInfo:
    """One DICOM series: its files and the header of its first file (no pixel data)."""

    uid: str
    header: object
    files: list[Path] = field(default_factory=list)

    @property
    def modality(self) -> str:
        return str(getattr(self.header, "Modality", "") or "")

    @property
    def sop_class(self) -> str:
        return str(getattr(self.header, "SOPClassUID", "") or "")

    @property
    def patient_id(self) -> str:
        return str(getattr(self.header, "PatientID", "") or "")

    @property
    def study_uid(self) -> str:
        return str(getattr(self.header, "StudyInstanceUID", "") or "")

    @property
    def frame_of_reference(self) -> str:
        return str(getattr(self.header, "FrameOfReferenceUID", "") or "")

    @property
    def folder(self) -> Path:
        """The deepest folder holding all files of the series (for messages)."""
        return Path(os.path.commonpath([f.parent for f in self.files]))

    @property
    def is_pet_image(self) -> bool:
        """A single-frame or enhanced PET image series (not a secondary-capture MIP)."""
        return self.modality == "PT" and self.sop_class in (PET_IMAGE_SOP, ENHANCED_PET_SOP)

    @property
    def attenuation_corrected(self) -> bool:
        """CorrectedImage lists ATTN (assumed when the tag is absent)."""
        corrected = getattr(self.header, "CorrectedImage", None)
        if corrected is None:
            return True
        values = [corrected] if isinstance(corrected, str) else list(corrected)
        return "ATTN" in {str(v).strip().upper() for v in values}

    @property
    def is_ct_volume(self) -> bool:
        """A CT image series that is not a localizer (scout)."""
        types = getattr(self.header, "ImageType", []) or []
        types = [types] if isinstance(types, str) else list(types)
        return (
            self.modality == "CT"
            and self.sop_class == CT_IMAGE_SOP
            and "LOCALIZER" not in {str(t).upper() for t in types}
        )

    @property
    def is_annotation(self) -> bool:
        """A DICOM-SEG or an RTSTRUCT."""
        return self.sop_class in (SEG_SOP, RTSTRUCT_SOP)


def read_header(path: Path):
    """The header of a DICOM file (no pixel data), or None when the file is not DICOM."""
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # not DICOM (pydicom raises several types)
        return None


def index_dicom(root: str | Path, progress: bool = False) -> dict[str, dict[str, list]]:
    """Every series under ``root``: ``{PatientID: {StudyInstanceUID: [SeriesInfo, ...]}}``.

    Files that are not DICOM, or lack a SeriesInstanceUID, are skipped. Series and files are in
    sorted path order, so the result does not depend on the file system's listing order.
    """
    series: dict[str, SeriesInfo] = {}
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and not p.name.startswith("."))
    for path in track(files, "scan DICOM", len(files), progress):
        ds = read_header(path)
        uid = getattr(ds, "SeriesInstanceUID", None) if ds is not None else None
        if not uid:
            continue
        if uid not in series:
            series[uid] = SeriesInfo(str(uid), ds)
        series[uid].files.append(path)
    tree: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for info in series.values():
        tree[info.patient_id][info.study_uid].append(info)
    return {p: dict(studies) for p, studies in tree.items()}


def safe_name(text: str, fallback: str) -> str:
    """Folder-safe name by the case-id rule (:func:`lion_nnunet.case_ids.sanitize_case_id`)."""
    return sanitize_case_id(str(text)) or fallback


def study_folder_name(header) -> str:
    """``<YYYY-MM-DD>-<StudyDescription>-<last 5 digits of StudyInstanceUID>`` of a series."""
    import re

    date = str(getattr(header, "StudyDate", "") or "")
    date = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) >= 8 else "nodate"
    desc = safe_name(getattr(header, "StudyDescription", "") or "", "study")
    uid = re.sub(r"\D", "", str(getattr(header, "StudyInstanceUID", "")))[-5:] or "0"
    return f"{date}-{desc}-{uid}"


def pet_study_folders(tree: dict[str, dict[str, list]]) -> dict[str, Path]:
    """``{PET series UID: Path(<patient>/<study>)}`` for every attenuation-corrected PET series.

    The folders ``lion convert dicom`` writes, and so the case ids ``lion predict -i DICOM_ROOT``
    gives (:func:`lion_nnunet.case_ids.study_case_ids` over these folders): patient = sanitised
    PatientID (made unique with ``_``), study = :func:`study_folder_name`, with ``-S<SeriesNumber>``
    when a study has several corrected PET series and the end of the series UID on a collision.
    """
    out: dict[str, Path] = {}
    patients_used: dict[str, str] = {}
    for patient_id in sorted(tree):
        patient = safe_name(patient_id, "anonymous")
        while patients_used.setdefault(patient, patient_id) != patient_id:
            patient += "_"
        for study_uid in sorted(tree[patient_id]):
            corrected = [
                s for s in tree[patient_id][study_uid] if s.is_pet_image and s.attenuation_corrected
            ]
            for pet in corrected:
                name = study_folder_name(pet.header)
                if len(corrected) > 1:
                    name += f"-S{getattr(pet.header, 'SeriesNumber', '') or pet.uid[-4:]}"
                if Path(patient, name) in out.values():  # name collision
                    name += f"-{pet.uid.replace('.', '')[-8:]}"
                out[pet.uid] = Path(patient, name)
    return out
