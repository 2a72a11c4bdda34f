"""Write a synthetic PET DICOM series (for tests, docs and trying ``lion predict -i dicom_root``).

Turns an SUV image (e.g. a ``lion phantoms`` SUV.nii.gz) back into activity concentration and
stores it as a single-frame PET series with the tags a scanner writes: Units, DecayCorrection,
patient weight, injected dose, half-life and injection/series times, with a per-slice
RescaleSlope. Axis order: the SimpleITK image is (x, y, z); slice k of the series is numpy
``array[k]`` (z, y, x).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk

PET_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.128"
F18_HALF_LIFE_S = 6586.2


def write_pet_series(
    image: sitk.Image,
    out_dir: str | Path,
    weight_kg: float = 75.0,
    dose_bq: float = 3.7e8,
    half_life_s: float = F18_HALF_LIFE_S,
    minutes_after_injection: float = 60.0,
    decay_correction: str = "START",
    units: str = "BQML",
    philips_suv_factor: float | None = None,
    patient_id: str = "SYN0001",
    modality: str = "PT",
) -> list[Path]:
    """Write ``image`` (SUV, (x, y, z) SimpleITK) as a PET DICOM series, one file per slice.

    Args:
        image: SUV image (float); its spacing/origin give the DICOM geometry (identity direction).
        out_dir: folder for ``slice_XXXX.dcm``.
        weight_kg, dose_bq, half_life_s, minutes_after_injection: acquisition parameters; the
            stored values are Bq/ml such that body-weight SUV gives back ``image``.
        decay_correction: ``START`` (to series start), ``ADMIN`` (to injection) or ``NONE``.
        units: ``BQML``, or ``CNTS`` (Philips: stored counts, SUV via ``philips_suv_factor``).
        philips_suv_factor: private tag (7053,1000) written when given.
        patient_id: PatientID (also part of the case id ``lion predict`` derives).
        modality: ``PT``; other values write a non-PET series (to test refusals).

    Returns:
        The written files, slice order = numpy z order.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    suv = sitk.GetArrayFromImage(image).astype(np.float64)
    injection = dt.datetime(2024, 5, 6, 9, 0, 0)
    series_start = injection + dt.timedelta(minutes=minutes_after_injection)
    lam = math.log(2) / half_life_s
    study_uid, series_uid, for_uid = generate_uid(), generate_uid(), generate_uid()
    spacing, origin = image.GetSpacing(), image.GetOrigin()
    files = []
    frame_s = 120.0  # ActualFrameDuration
    t_ave = math.log(lam * frame_s / -math.expm1(-lam * frame_s)) / lam  # average-activity time
    for k in range(suv.shape[0]):
        # one bed for START/ADMIN (every slice acquired at the series start, as a scanner writes
        # a single bed); NONE: a frame per slice, 10 s apart, to exercise per-frame decay
        acq = series_start + dt.timedelta(seconds=10 * k if decay_correction == "NONE" else 0)
        if decay_correction == "START":
            decayed = dose_bq * math.exp(-lam * (series_start - injection).total_seconds())
        elif decay_correction == "ADMIN":
            decayed = dose_bq
        else:  # NONE: the frame's mean activity, decaying during the 120 s frame
            decayed = dose_bq * math.exp(-lam * (acq - injection).total_seconds())
            decayed *= (1 - math.exp(-lam * frame_s)) / (lam * frame_s)
        bqml = suv[k] * decayed / (weight_kg * 1000.0)
        stored_float = suv[k] / float(philips_suv_factor or 1.0) if units == "CNTS" else bqml
        slope = max(float(stored_float.max()), 1e-6) / 30000.0
        stored = np.round(stored_float / slope).astype(np.uint16)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = PET_SOP_CLASS
        sop_uid = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID, ds.SOPInstanceUID = PET_SOP_CLASS, sop_uid
        ds.Modality = modality
        ds.PatientID, ds.PatientName = patient_id, f"Synthetic^{patient_id}"
        ds.PatientSex, ds.PatientBirthDate, ds.PatientAge = "O", "19600101", "064Y"
        ds.PatientWeight = f"{weight_kg:.1f}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = for_uid, ""
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "A1", ""
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = series_start.strftime("%Y%m%d")
        ds.StudyTime = ds.SeriesTime = series_start.strftime("%H%M%S")
        ds.AcquisitionTime = acq.strftime("%H%M%S")
        ds.ContentDate, ds.ContentTime = ds.SeriesDate, ds.SeriesTime
        ds.SeriesNumber, ds.InstanceNumber = 1, k + 1
        ds.SeriesDescription = "PET WB synthetic"
        ds.Manufacturer = "Philips" if units == "CNTS" else "LION synthetic"
        ds.Units, ds.DecayCorrection = units, decay_correction
        ds.CorrectedImage = ["ATTN", "DECY"] if decay_correction != "NONE" else ["ATTN"]
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.NumberOfSlices = suv.shape[0]
        # DICOM: ms from the series start to the time the values occurred (acquisition + T_ave)
        offset_s = (acq - series_start).total_seconds() + t_ave
        ds.FrameReferenceTime = f"{offset_s * 1000.0:.3f}"
        ds.ActualFrameDuration = int(frame_s * 1000)
        rp = Dataset()
        rp.RadiopharmaceuticalStartTime = injection.strftime("%H%M%S")
        rp.RadiopharmaceuticalStartDateTime = injection.strftime("%Y%m%d%H%M%S")
        rp.RadionuclideTotalDose = f"{dose_bq:.6g}"
        rp.RadionuclideHalfLife = f"{half_life_s:.6g}"
        rp.Radiopharmaceutical = "Fluorodeoxyglucose"
        ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [origin[0], origin[1], origin[2] + k * spacing[2]]
        ds.PixelSpacing = [spacing[1], spacing[0]]
        ds.SliceThickness = spacing[2]
        ds.Rows, ds.Columns = suv.shape[1], suv.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", "0"
        if philips_suv_factor is not None:
            ds.add_new(0x70530010, "LO", "Philips PET Private Group")
            ds.add_new(0x70531000, "DS", f"{philips_suv_factor:.10g}")
        ds.PixelData = stored.tobytes()
        path = out_dir / f"slice_{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files
