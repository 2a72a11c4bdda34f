"""PET DICOM series -> body-weight SUV image.

Tags are read with pydicom, the geometry (slice order, spacing, origin, direction) with
SimpleITK's ImageSeriesReader; voxel values are computed per slice from pydicom's stored values
and that slice's RescaleSlope/Intercept (slopes differ per slice on most scanners).

Body-weight SUV (g/ml) = activity concentration (Bq/ml) x weight (g) / decay-corrected dose (Bq):

* ``Units`` BQML: the decay reference follows ``DecayCorrection``: START -> the dose is decayed
  from the injection (RadiopharmaceuticalStartDateTime, else SeriesDate +
  RadiopharmaceuticalStartTime) to the series start (SeriesDate/SeriesTime; when an
  AcquisitionDate/Time is earlier than the series time, as after GE/Siemens re-processing, the
  earliest acquisition time); ADMIN -> images are already corrected to injection, no decay;
  NONE -> the dose is decayed to each slice's AcquisitionTime.
* ``Units`` CNTS (Philips): SUV = value x the Philips SUV scale factor, private tag (7053,1000).
* ``Units`` GML: the series already holds SUVbw.

Refused with one sentence: not a PET series (CT/MR...), missing weight/dose/half-life/times,
multi-frame (enhanced) PET, dynamic or gated series (NumberOfTimeSlices > 1, SeriesType
DYNAMIC/GATED, several FrameReferenceTime values).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError

log = logging.getLogger(__name__)

PHILIPS_SUV_TAG = (0x7053, 0x1000)


def _read_header(path: Path):
    import pydicom

    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # not DICOM (pydicom raises several types)
        return None


def _parse_dt(date: str | None, time: str | None) -> dt.datetime | None:
    if not date or not time:
        return None
    time = str(time).split("+")[0].split("-")[0]
    whole, _, frac = time.partition(".")
    whole = whole.ljust(6, "0")
    try:
        value = dt.datetime.strptime(f"{date}{whole}", "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return value + dt.timedelta(microseconds=int((frac + "000000")[:6])) if frac else value


def _parse_datetime(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    value = str(value).split("+")[0]
    return _parse_dt(value[:8], value[8:]) if len(value) >= 12 else None


def _require(ds, keyword: str, where: Path, why: str):
    value = getattr(ds, keyword, None)
    if value is None or value == "":
        raise LionError(f"{where}: DICOM tag {keyword} is missing; it is needed for {why}")
    return value


def check_static_pet(ds, where: Path) -> None:
    """Refuse non-PET, multi-frame and dynamic/gated series (one sentence each)."""
    modality = getattr(ds, "Modality", "")
    if modality != "PT":
        raise LionError(
            f"{where}: Modality is {modality or 'missing'}, not PT; give a PET series "
            "(CT/MR series are not converted to SUV)"
        )
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        raise LionError(
            f"{where}: multi-frame (enhanced) PET with {ds.NumberOfFrames} frames is not "
            "supported; export the series as single-frame PET images"
        )
    series_type = [str(v).upper() for v in getattr(ds, "SeriesType", [])]
    if int(getattr(ds, "NumberOfTimeSlices", 1) or 1) > 1 or {"DYNAMIC", "GATED"} & set(
        series_type
    ):
        raise LionError(
            f"{where}: dynamic/gated PET (NumberOfTimeSlices "
            f"{getattr(ds, 'NumberOfTimeSlices', '?')}, SeriesType {series_type}) is not "
            "supported; give a static whole-body series"
        )


def suv_scale(ds, where: Path, acquisition: dt.datetime | None = None) -> float:
    """Factor turning this slice's rescaled values into body-weight SUV.

    Args:
        ds: the slice's pydicom dataset.
        where: file (for messages).
        acquisition: the series start (START) or this slice's acquisition time (NONE).
    """
    units = str(getattr(ds, "Units", "")).upper()
    if units == "GML":
        return 1.0
    if units == "CNTS":
        if PHILIPS_SUV_TAG not in ds:
            raise LionError(
                f"{where}: Units CNTS without the Philips SUV scale factor (7053,1000); "
                "cannot convert counts to SUV, export the series in BQML"
            )
        return float(ds[PHILIPS_SUV_TAG].value)
    if units != "BQML":
        raise LionError(f"{where}: Units {units or 'missing'}; expected BQML, CNTS or GML")
    weight_kg = float(_require(ds, "PatientWeight", where, "body-weight SUV"))
    if weight_kg <= 0:
        raise LionError(f"{where}: PatientWeight {weight_kg} kg; a positive weight is needed")
    seq = _require(ds, "RadiopharmaceuticalInformationSequence", where, "the injected dose")
    rp = seq[0]
    dose = float(_require(rp, "RadionuclideTotalDose", where, "body-weight SUV"))
    if dose <= 0:
        raise LionError(f"{where}: RadionuclideTotalDose {dose} Bq; a positive dose is needed")
    correction = str(getattr(ds, "DecayCorrection", "")).upper()
    if correction == "ADMIN":
        decayed = dose
    elif correction in ("START", "NONE"):
        half_life = float(_require(rp, "RadionuclideHalfLife", where, "decay correction"))
        injection = _parse_datetime(getattr(rp, "RadiopharmaceuticalStartDateTime", None))
        if injection is None:
            start = _require(rp, "RadiopharmaceuticalStartTime", where, "decay correction")
            injection = _parse_dt(getattr(ds, "SeriesDate", None), start)
        if injection is None or acquisition is None:
            raise LionError(
                f"{where}: injection or scan time unreadable (RadiopharmaceuticalStartDateTime/"
                "StartTime, SeriesDate/SeriesTime); needed for decay correction"
            )
        delta = (acquisition - injection).total_seconds()
        if delta < 0:
            raise LionError(
                f"{where}: scan time {acquisition} is before the injection {injection}; "
                "check the RadiopharmaceuticalStartTime tag"
            )
        decayed = dose * math.exp(-math.log(2) * delta / half_life)
    else:
        raise LionError(
            f"{where}: DecayCorrection {correction or 'missing'}; expected START, ADMIN or NONE"
        )
    return weight_kg * 1000.0 / decayed


def _series_start(headers: list, where: Path) -> dt.datetime | None:
    first = headers[0]
    series = _parse_dt(getattr(first, "SeriesDate", None), getattr(first, "SeriesTime", None))
    acquisitions = [
        _parse_dt(getattr(h, "AcquisitionDate", None) or getattr(h, "SeriesDate", None),
                  getattr(h, "AcquisitionTime", None))
        for h in headers
    ]  # fmt: skip
    acquisitions = [a for a in acquisitions if a is not None]
    if acquisitions and (series is None or min(acquisitions) < series):
        return min(acquisitions)
    return series


def read_suv_series(files: list[Path]) -> sitk.Image:
    """Read one static PET series (files of one SeriesInstanceUID) as an SUVbw float32 image."""
    import pydicom

    if not files:
        raise LionError("no DICOM files given")
    where = Path(files[0]).parent
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    check_static_pet(headers[0], where)
    order = np.argsort(
        [_position_along_normal(h, Path(f)) for h, f in zip(headers, files, strict=True)]
    )
    ordered = [str(files[i]) for i in order]
    headers = [headers[i] for i in order]
    times = {str(getattr(h, "FrameReferenceTime", "")) for h in headers}
    if len(times) > 1:
        raise LionError(
            f"{where}: slices have {len(times)} FrameReferenceTime values (dynamic PET); only "
            "static series are supported"
        )
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(ordered)
    geometry = reader.Execute()
    start = _series_start(headers, where)
    correction = str(getattr(headers[0], "DecayCorrection", "")).upper()
    slices = []
    for f, h in zip(ordered, headers, strict=True):
        ds = pydicom.dcmread(f)
        acq = start
        if correction == "NONE":
            acq = _parse_dt(getattr(h, "AcquisitionDate", None) or h.SeriesDate,
                            getattr(h, "AcquisitionTime", None)) or start  # fmt: skip
        value = ds.pixel_array.astype(np.float64) * float(getattr(ds, "RescaleSlope", 1) or 1)
        value += float(getattr(ds, "RescaleIntercept", 0) or 0)
        slices.append((value * suv_scale(h, Path(f), acq)).astype(np.float32))
    array = np.stack(slices)
    if array.shape != sitk.GetArrayFromImage(geometry).shape:
        raise LionError(f"{where}: slices differ in size; not one PET volume")
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(geometry)
    return image


def _position_along_normal(header, where: Path) -> float:
    """Slice position (mm) along the normal of ImageOrientationPatient."""
    try:
        row, col = (
            np.array(header.ImageOrientationPatient[:3], float),
            np.array(header.ImageOrientationPatient[3:], float),
        )
        return float(np.dot(np.cross(row, col), np.array(header.ImagePositionPatient, float)))
    except (AttributeError, ValueError, TypeError):
        raise LionError(
            f"{where}: ImagePositionPatient/ImageOrientationPatient missing; cannot order slices"
        ) from None


def _case_id(header) -> str:
    raw = f"{getattr(header, 'PatientID', '') or 'patient'}_{getattr(header, 'SeriesNumber', '')}"
    return re.sub(r"[^A-Za-z0-9_\-]+", "_", raw).strip("_")


def find_pet_series(root: str | Path) -> list:
    """Every PET series under ``root`` as a prediction case (loaded and converted lazily).

    Case id: ``<PatientID>_<SeriesNumber>`` (made unique with the end of the series UID).
    Raises when DICOM files exist but none is a PET series.
    """
    from .predict import Case

    root = Path(root)
    groups: dict[str, list[Path]] = defaultdict(list)
    first: dict[str, object] = {}
    modalities = set()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        ds = _read_header(path)
        if ds is None or "SeriesInstanceUID" not in ds:
            continue
        modalities.add(str(getattr(ds, "Modality", "?")))
        if getattr(ds, "Modality", "") != "PT":
            continue
        groups[ds.SeriesInstanceUID].append(path)
        first.setdefault(ds.SeriesInstanceUID, ds)
    if not groups and modalities:
        raise LionError(
            f"{root}: DICOM series of modality {', '.join(sorted(modalities))} but no PET (PT) "
            "series; give the folder of a PET series"
        )
    cases, seen = [], set()
    for uid, files in groups.items():
        header = first[uid]
        check_static_pet(header, files[0].parent)
        case_id = _case_id(header)
        if case_id in seen:
            case_id = f"{case_id}_{uid[-6:].replace('.', '')}"
        seen.add(case_id)
        cases.append(
            Case(
                case_id,
                loader=lambda f=files: read_suv_series(f),
                source=str(files[0].parent),
                dicom_files=files,
            )
        )
    return cases
