"""Plain-pydicom builders for vendor-like PET/CT/RTSTRUCT DICOM files (every tag set explicitly).

Tests choose the tags a real export carries (Siemens per-bed FrameReferenceTime/DecayFactor,
Philips private blocks, GE private scan time, post-processed SeriesTime, odd units) and compute the
expected SUV themselves from QIBA's pseudo-code; nothing here computes SUV.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

PET_SOP = "1.2.840.10008.5.1.4.1.1.128"
CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"


def _base(sop_class: str, modality: str, patient: str, study_uid: str, series_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    uid = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = sop_class, uid, modality
    ds.PatientID, ds.PatientName = patient, f"Test^{patient}"
    ds.PatientBirthDate, ds.PatientSex = "19600101", "M"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber = "20240506", "094500", "1", "A1"
    ds.ReferringPhysicianName, ds.StudyDescription = "", "PET-CT Ganzkoerper"
    return ds


def _image(ds: Dataset, stored: np.ndarray, z: float, spacing=(4.0, 4.0), origin=(-10.0, -8.0),
           signed: bool = False) -> None:  # fmt: skip
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [origin[0], origin[1], z]
    ds.PixelSpacing = [spacing[1], spacing[0]]  # row spacing (y), column spacing (x)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1 if signed else 0
    ds.PixelData = stored.astype(np.int16 if signed else np.uint16).tobytes()


def pet_series(
    folder: Path,
    stored: list[np.ndarray],
    slopes: list[float],
    z_mm: list[float],
    per_slice: list[dict] | None = None,
    patient: str = "P1",
    study_uid: str | None = None,
    frame_of_reference: str | None = None,
    rp: dict | None = None,
    implicit_vr: bool = False,
    **tags,
) -> list[Path]:
    """One PET slice file per entry of ``stored`` (uint16 rows x columns) with the given tags.

    ``tags`` apply to every slice, ``per_slice[k]`` to slice k; ``rp`` is the radiopharmaceutical
    item. Private tags: pass ``private=[(tag, vr, value), ...]`` in ``tags`` or ``per_slice``.
    ``implicit_vr``: Implicit VR Little Endian, as many Philips exports (private VRs are lost).
    """
    folder.mkdir(parents=True, exist_ok=True)
    series_uid, study_uid = generate_uid(), study_uid or generate_uid()
    frame_of_reference = frame_of_reference or generate_uid()
    files = []
    for k, pixels in enumerate(stored):
        ds = _base(PET_SOP, "PT", patient, study_uid, series_uid)
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference, ""
        ds.SeriesNumber, ds.InstanceNumber = 3, k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.CorrectedImage = ["NORM", "DTIM", "ATTN", "SCAT", "DECY", "RAN"]
        ds.SeriesType = ["WHOLE BODY", "IMAGE"]
        ds.RescaleSlope, ds.RescaleIntercept = f"{slopes[k]:.10g}", "0"
        item = Dataset()
        for key, value in (rp or {}).items():
            setattr(item, key, value)
        ds.RadiopharmaceuticalInformationSequence = Sequence([item])
        private = []
        for source in (tags, (per_slice or [{}] * len(stored))[k]):
            for key, value in source.items():
                if key == "private":
                    private += value
                else:
                    setattr(ds, key, value)
        for tag, vr, value in private:
            ds.add_new(tag, vr, value)
        _image(ds, pixels, z_mm[k])
        if implicit_vr:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        path = folder / f"IM{k:05d}"  # scanners' names carry no extension
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def ct_series(folder: Path, hu: np.ndarray, spacing_xyz: tuple, origin_xyz: tuple, patient: str,
              study_uid: str, frame_of_reference: str) -> list[Path]:  # fmt: skip
    """A CT series from HU (z, y, x), stored with RescaleIntercept -1024."""
    folder.mkdir(parents=True, exist_ok=True)
    series_uid = generate_uid()
    files = []
    for k in range(hu.shape[0]):
        ds = _base(CT_SOP, "CT", patient, study_uid, series_uid)
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = frame_of_reference, ""
        ds.SeriesNumber, ds.InstanceNumber = 2, k + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.RescaleSlope, ds.RescaleIntercept, ds.KVP = "1", "-1024", "120"
        ds.SeriesDate, ds.SeriesTime = "20240506", "094500"
        ds.SliceThickness = spacing_xyz[2]
        _image(ds, np.round(hu[k] + 1024).astype(np.uint16),
               origin_xyz[2] + k * spacing_xyz[2], spacing_xyz[:2], origin_xyz[:2])  # fmt: skip
        path = folder / f"CT{k:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def rtstruct(path: Path, image_files: list[Path], rois: dict[str, list[np.ndarray]]) -> Path:
    """An RTSTRUCT on the series of ``image_files``: ROI name -> planar contours (n, 3) in mm."""
    import pydicom

    ref = pydicom.dcmread(image_files[0], stop_before_pixels=True)
    ds = _base(RTSTRUCT_SOP, "RTSTRUCT", ref.PatientID, ref.StudyInstanceUID, generate_uid())
    ds.SeriesNumber, ds.InstanceNumber = 99, 1
    ds.StructureSetLabel, ds.StructureSetDate, ds.StructureSetTime = "Tumor", "20240507", "1000"
    series = Dataset()
    series.SeriesInstanceUID = ref.SeriesInstanceUID
    series.ContourImageSequence = Sequence([])
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = ref.StudyInstanceUID
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = ref.FrameOfReferenceUID
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    rois_seq, contours_seq, obs_seq = [], [], []
    for number, (name, contours) in enumerate(rois.items(), start=1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName = number, name
        roi.ReferencedFrameOfReferenceUID = ref.FrameOfReferenceUID
        roi.ROIGenerationAlgorithm = "MANUAL"
        rois_seq.append(roi)
        items = []
        for points in contours:
            c = Dataset()
            c.ContourGeometricType = "CLOSED_PLANAR"
            c.NumberOfContourPoints = len(points)
            c.ContourData = [f"{v:.4f}" for v in np.asarray(points, float).ravel()]
            items.append(c)
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = number
        roi_contour.ROIDisplayColor = [255, 0, 0]
        roi_contour.ContourSequence = Sequence(items)
        contours_seq.append(roi_contour)
        obs = Dataset()
        obs.ObservationNumber, obs.ReferencedROINumber = number, number
        obs.RTROIInterpretedType, obs.ROIInterpreter = "GTV", ""
        obs_seq.append(obs)
    ds.StructureSetROISequence = Sequence(rois_seq)
    ds.ROIContourSequence = Sequence(contours_seq)
    ds.RTROIObservationsSequence = Sequence(obs_seq)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
