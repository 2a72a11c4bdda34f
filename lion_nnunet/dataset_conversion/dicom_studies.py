"""``lion convert dicom``: a clinical DICOM tree -> autoPET study folders (SUV, CTres, SEG).

For every patient and study found under the input (any folder layout), each static,
attenuation-corrected PET series becomes ``<output>/<patient>/<study>/`` with

* ``SUV.nii.gz``: the PET in body-weight SUV, float32 (:mod:`lion_nnunet.inference.suv`, the
  reader ``lion predict`` uses for DICOM input);
* ``CTres.nii.gz``: the study's CT (HU, float32) resampled onto the PET grid by linear
  interpolation, -1024 HU outside the CT, as autoPET ships it; the CT is the study's CT image
  series (not a localizer) sharing the PET's FrameOfReferenceUID, else any, the one with the most
  slices;
* ``SEG.nii.gz``: the tumor mask (uint8 0/1) on the PET grid from the study's DICOM-SEG and
  RTSTRUCT files (:mod:`lion_nnunet.dataset_conversion.dicom_masks`), ROIs/segments picked by name;
  not written when the study has no SEG/RTSTRUCT or none of their names matches ``--roi`` (an
  organs-at-risk structure set, say): the SUV and CT are still written, a warning names the ROIs
  found and the ``note`` column of the conversion log says why there is no SEG;
* ``dicom_sources.json``: which series and ROIs made each file.

Folder names: ``<PatientID>`` and ``<StudyDate>-<StudyDescription>-<last 5 digits of the
StudyInstanceUID>`` (``-S<SeriesNumber>`` appended when a study has several PET series), with
characters other than letters, digits, ``.``, ``_`` and ``-`` replaced by ``-``. A study whose
``SUV.nii.gz`` exists is skipped (resume) unless ``overwrite``; SUV is written last. A refused
series names its folder and the reason and does not stop the others.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from lion_nnunet import wording
from lion_nnunet.cohort.cluster import ClusterOptions
from lion_nnunet.cohort.run import map_cases
from lion_nnunet.errors import LionError
from lion_nnunet.inference.dicom_index import SEG_SOP, SeriesInfo, index_dicom, pet_study_folders
from lion_nnunet.inference.suv import (
    check_static_pet,
    read_suv_series,
    rescaled_pixels,
    sort_slices,
)
from lion_nnunet.io import write_csv, write_image, write_json

log = logging.getLogger(__name__)

SOURCES_FILE, LOG_FILE = "dicom_sources.json", "dicom_conversion.csv"
LOG_COLUMNS = ["study", "status", "series", "reason", "note"]
#: Start of the conversion log's note for a study written without SEG.nii.gz.
NO_SEG = "no SEG.nii.gz"
CT_OUTSIDE_HU = -1024.0


@dataclass
class StudyJob:
    """One PET series to convert, with the study's CT and annotations (picklable for workers)."""

    out_dir: Path
    pet_folder: Path
    pet_files: list[Path]
    ct_files: list[Path] = field(default_factory=list)
    ct_folder: Path | None = None
    annotations: list[tuple[str, Path]] = field(default_factory=list)  # ("SEG"|"RTSTRUCT", file)
    other_series: dict[str, list[Path]] = field(default_factory=dict)  # uid -> files (CT grids)
    roi: str = ""
    overwrite: bool = False


def _pick_ct(pet: SeriesInfo, cts: list[SeriesInfo]) -> SeriesInfo | None:
    if not cts:
        return None
    same = [
        c for c in cts if c.frame_of_reference and c.frame_of_reference == pet.frame_of_reference
    ]
    return max(same or cts, key=lambda c: len(c.files))


def plan_jobs(
    tree: dict, output: Path, roi: str, overwrite: bool
) -> tuple[list[StudyJob], list[dict]]:
    """Jobs for every PET series of the indexed tree, and the series refused already here."""
    jobs, refused = [], []
    folders = pet_study_folders(tree)
    for patient_id in sorted(tree):
        for study_uid in sorted(tree[patient_id]):
            series = tree[patient_id][study_uid]
            pets = [s for s in series if s.is_pet_image]
            cts = [s for s in series if s.is_ct_volume]
            notes = [s for s in series if s.is_annotation]
            corrected = [p for p in pets if p.attenuation_corrected]
            for p in pets:
                if not p.attenuation_corrected and corrected:
                    log.info("%s: non-attenuation-corrected PET skipped", p.folder)
                elif not p.attenuation_corrected:
                    why = "PET is not attenuation corrected (CorrectedImage lacks ATTN)"
                    refused.append(_refusal(p.folder, why))
            for pet in corrected:
                try:
                    check_static_pet(pet.header, pet.folder)
                except LionError as e:
                    refused.append(_refusal(pet.folder, str(e).split(": ", 1)[-1]))
                    continue
                ct = _pick_ct(pet, cts)
                if ct is not None and ct.frame_of_reference != pet.frame_of_reference:
                    why = "has another FrameOfReferenceUID than the PET; placed by coordinates"
                    log.warning("%s: CT %s %s", pet.folder, ct.folder, why)
                jobs.append(
                    StudyJob(
                        out_dir=output / folders[pet.uid],
                        pet_folder=pet.folder,
                        pet_files=pet.files,
                        ct_files=ct.files if ct else [],
                        ct_folder=ct.folder if ct else None,
                        annotations=[
                            ("SEG" if n.sop_class == SEG_SOP else "RTSTRUCT", f)
                            for n in notes
                            for f in n.files
                        ],
                        other_series={c.uid: c.files for c in cts},
                        roi=roi,
                        overwrite=overwrite,
                    )
                )
            if not pets and (cts or notes):
                log.info("study %s of %s has no PET series; skipped", study_uid, patient_id)
    return jobs, refused


def _refusal(folder: Path, reason: str) -> dict:
    return {"study": "", "status": "refused", "series": str(folder), "reason": reason, "note": ""}


def read_ct_series(files: list[Path]) -> sitk.Image:
    """A CT series as a float32 HU image (x, y, z), slices ordered along the normal."""
    import pydicom

    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    files, headers, grid = sort_slices([Path(f) for f in files], headers)
    array = np.stack([rescaled_pixels(f)[0] for f in files]).astype(np.float32)
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(grid)
    return image


def ct_on_pet_grid(ct: sitk.Image, pet: sitk.Image) -> sitk.Image:
    """CT resampled onto the PET grid (linear; -1024 HU outside the CT), float32."""
    return sitk.Resample(ct, pet, sitk.Transform(), sitk.sitkLinear, CT_OUTSIDE_HU,
                         sitk.sitkFloat32)  # fmt: skip


def _grid(files: list[Path]) -> sitk.Image:
    import pydicom

    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    return sort_slices([Path(f) for f in files], headers)[2]


def _tumor_mask(
    job: StudyJob, pet: sitk.Image, pet_uid: str
) -> tuple[np.ndarray | None, dict, str]:
    """(mask (z, y, x) or None, {annotation file: ROIs taken}, why there is no mask or "")."""
    from .dicom_masks import rtstruct_mask, seg_mask

    if not job.annotations:
        return None, {}, f"{NO_SEG}: the study has no DICOM-SEG or RTSTRUCT"
    pattern = re.compile(job.roi)
    grids = {pet_uid: pet}
    for uid, files in job.other_series.items():
        grids[uid] = _grid(files)
    mask = np.zeros(pet.GetSize()[::-1], np.uint8)
    used, names = {}, []
    for kind, path in job.annotations:
        if kind == "SEG":
            part, taken, every = seg_mask(path, pet, pattern)
        else:
            part, taken, every = rtstruct_mask(path, grids, pet, pattern)
        names += every
        if taken:
            mask |= part
            used[str(path)] = taken
    if not used:
        why = (
            f"{NO_SEG}: no ROI/segment name of the study's {len(job.annotations)} SEG/RTSTRUCT "
            f"file(s) matches --roi {job.roi!r} (names: {wording.names(sorted(set(names)))}); "
            "re-run with --roi naming the tumor ROIs to get SEG.nii.gz"
        )
        log.info("%s: %s", job.pet_folder, why)  # the CLI prints it from the log's note
        return None, {}, why
    return mask, used, ""


def _suv_inputs(header) -> dict:
    """The PET tags SUV depends on, as found (for provenance)."""
    rp = getattr(header, "RadiopharmaceuticalInformationSequence", [None])[0]
    keys = ("Manufacturer", "ManufacturerModelName", "Units", "DecayCorrection", "SUVType",
            "PatientWeight", "SeriesDate", "SeriesTime")  # fmt: skip
    out = {k: str(getattr(header, k, "")) for k in keys}
    for k in ("Radiopharmaceutical", "RadionuclideTotalDose", "RadionuclideHalfLife",
              "RadiopharmaceuticalStartDateTime", "RadiopharmaceuticalStartTime"):  # fmt: skip
        out[k] = str(getattr(rp, k, "")) if rp is not None else ""
    return out


def convert_study(job: StudyJob) -> dict:
    """Convert one PET series (and its study's CT and masks); a dict row for the conversion log."""
    import pydicom

    row = {"study": str(job.out_dir), "status": "written", "series": str(job.pet_folder),
           "reason": "", "note": ""}  # fmt: skip
    suv_path = job.out_dir / "SUV.nii.gz"
    if suv_path.is_file() and not job.overwrite:
        row["status"] = "skipped"
        return row
    try:
        pet = read_suv_series(job.pet_files)
        header = pydicom.dcmread(job.pet_files[0], stop_before_pixels=True)
        pet_uid = str(header.SeriesInstanceUID)
        ct = None
        if job.ct_files:
            try:
                ct = ct_on_pet_grid(read_ct_series(job.ct_files), pet)
            except LionError as e:
                raise LionError(f"CT {job.ct_folder}: {e}") from None
        mask, used, row["note"] = _tumor_mask(job, pet, pet_uid)
    except LionError as e:
        row.update(status="refused", reason=str(e))
        return row
    except Exception as e:  # an unreadable file of one series must not stop the cohort
        row.update(status="refused", reason=f"{type(e).__name__}: {e}")
        return row
    if ct is not None:
        write_image(ct, job.out_dir / "CTres.nii.gz")
    if mask is not None:
        seg = sitk.GetImageFromArray(mask)
        seg.CopyInformation(pet)
        write_image(seg, job.out_dir / "SEG.nii.gz")
    sources = {
        "pet_series": str(job.pet_folder),
        "ct_series": str(job.ct_folder or ""),
        "tumor_rois": used if mask is not None else {},
        "no_seg": row["note"],
        "suv_inputs": _suv_inputs(header),
    }
    write_json(sources, job.out_dir / SOURCES_FILE)
    write_image(pet, suv_path)
    return row


def _row_status(row: dict) -> tuple[str, str]:
    """cohort.csv's status of a conversion log row."""
    if row["status"] == "refused":
        return "failed", row["reason"]
    return ("skipped" if row["status"] == "skipped" else "ok"), ""


def convert_dicom(
    input_dir: str | Path,
    output_dir: str | Path,
    roi: str | None = None,
    num_processes: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    cluster: ClusterOptions | None = None,
) -> pd.DataFrame:
    """Convert every PET study under ``input_dir``; the conversion log (also written as CSV).

    Returns:
        One row per PET series: study (output folder), status (written/skipped/refused),
        series (source folder), reason (of a refusal), note (``no SEG.nii.gz: ...`` for a study
        written without tumor mask).
    """
    from .dicom_masks import DEFAULT_ROI

    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise LionError(f"{input_dir}: input folder not found")
    roi = roi or DEFAULT_ROI
    try:
        re.compile(roi)
    except re.error as e:
        raise LionError(f"--roi {roi!r} is not a regular expression ({e})") from None
    tree = index_dicom(input_dir, progress)
    jobs, refused = plan_jobs(tree, output_dir, roi, overwrite)
    if not jobs and not refused:
        raise LionError(f"{input_dir}: no DICOM PET series found (files are read by content)")
    rows = refused + map_cases(
        convert_study, jobs, [str(j.out_dir.relative_to(output_dir)) for j in jobs], cluster,
        num_processes, "convert dicom", progress, output_dir,
        on_failure=lambda study, error: {"study": str(output_dir / study), "status": "refused",
                                         "series": "", "reason": error, "note": ""},
        status_of=_row_status,
    )  # fmt: skip
    table = pd.DataFrame(rows, columns=LOG_COLUMNS)
    output_dir.mkdir(parents=True, exist_ok=True)
    write_csv(table, output_dir / LOG_FILE)
    return table
