"""PET DICOM series -> body-weight SUV image (SUVbw, g/ml), as QIBA's vendor-neutral pseudo-code.

Body-weight SUV = activity concentration (Bq/ml) x weight (g) / dose (Bq) decayed to the time the
voxel values refer to. Per slice, from pydicom's stored values and that slice's
RescaleSlope/Intercept (slopes differ per slice on GE and Siemens):

* ``Units`` BQML, ``DecayCorrection`` START: images are decay corrected to the scan start, taken
  as QIBA's vendor-neutral pseudo-code has it, branch by branch (checked against cornerstone's
  independent implementation, @cornerstonejs/calculate-suv, in tests/test_suv_vendors.py and
  tests/test_suv_dro.py):
  (1) SeriesDate/Time not after the series' earliest AcquisitionDate/Time: the series time.
  Otherwise the series may be post-processed (a re-reconstruction's SeriesTime is after the
  acquisition), and frame by frame: (2) GE's private scan date-time (0009,100D) (QIBA), or
  Siemens' (0071,1022) (IBSI SUV manual: Vacha et al., "Comprehensive Manual for SUV Computation
  and Digital Reference Objects", github.com/oncoray/suv_computation, docs/suv.html, CC BY 4.0);
  (3) GE: AcquisitionDate/Time - FrameReferenceTime (IBSI manual); (4) FrameReferenceTime 0: the
  earliest AcquisitionDate/Time (QIBA's frame rule needs FrameReferenceTime > 0; cornerstone's
  fallback); (5) AcquisitionDate/Time + T_ave - FrameReferenceTime (QIBA's "Siemens PETsyngo"
  rule, which the IBSI manual applies to any vendor), T_ave = ln(lambda T / (1 - exp(-lambda
  T))) / lambda the time of average activity in a frame of length T = ActualFrameDuration. A
  frame none of these rules fits is refused.
* ``DecayCorrection`` ADMIN: images are corrected to the injection; the dose is not decayed.
* ``DecayCorrection`` NONE: each slice holds the mean activity over its own frame (start =
  AcquisitionDate/Time, length T = ActualFrameDuration): the dose is decayed to the frame start
  and averaged over the frame, D(t_start) x (1 - exp(-lambda T)) / (lambda T), i.e. decayed to
  the measurement time AcquisitionDate/Time + T_ave, as the IBSI manual has it.
* Injection: RadiopharmaceuticalStartDateTime, else RadiopharmaceuticalStartTime on the scan's date;
  a start time without date that lies after the scan is taken from the day before (injection before
  midnight, scan after it).
* ``Units`` CNTS (Philips): the SUV scale factor of the "Philips PET Private Group" block
  (element 0x00 of the block, usually (7053,1000); the block is found through its private creator,
  not at a fixed address; without a private creator, and with a Manufacturer naming Philips, at
  the conventional (7053,1000) and (7053,1009)); when it is absent or 0 ("cannot convert" per
  Philips), the activity concentration factor (element 0x09, usually (7053,1009)) gives Bq/ml,
  then as BQML. Vendor private tags found the same way: GE (0009,100D) in "GEMS_PETD_01",
  Siemens (0071,1022) in "SIEMENS MED PT".
* ``Units`` GML: the series holds SUV; taken as is for ``SUVType`` BW (or absent); SUVType
  LBMJAMES128 and LBMJANMA (lean body mass by a formula DICOM names) are turned back into SUVbw
  with PatientSize and PatientSex: SUVbw = SUVlbm x weight / LBM.

Refused with one sentence: not PET, multi-frame (enhanced) PET, dynamic or gated series (from
SeriesType, NumberOfTimeSlices, NumberOfTimeSlots only), missing or implausible weight, dose or
half-life (a dose in MBq, a weight in grams, a half-life in minutes), GML with SUVType LBM (James
with the male multiplier not recorded), IBW or BSA (no formula in DICOM), a scan before the
injection or more than 24 h after it, uneven slice spacing,
and a result whose values are not SUV (:func:`lion_nnunet.inference.plausibility.check_pet_values`).

Geometry: built from ImagePositionPatient/ImageOrientationPatient/PixelSpacing, slices sorted
along the slice normal; SimpleITK image (x, y, z), numpy array (z, y, x).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError

from .plausibility import MAX_PLAUSIBLE_SUV as MAX_PLAUSIBLE_SUV  # re-exported
from .plausibility import check_pet_values

log = logging.getLogger(__name__)

PHILIPS_CREATOR = "Philips PET Private Group"
PHILIPS_SUV_FACTOR, PHILIPS_BQML_FACTOR = 0x00, 0x09  # element offsets in the private block
GE_CREATOR, GE_SCAN_DATETIME = "GEMS_PETD_01", 0x0D  # (0009,100D) post-injection scan date-time
SIEMENS_CREATOR, SIEMENS_DECAY_DATETIME = "SIEMENS MED PT", 0x22  # (0071,1022) decay reference
#: Manufacturer (0008,0070) patterns (case-insensitive search): "GE MEDICAL SYSTEMS", "GEMS",
#: "SIEMENS Healthineers", "Philips Medical Systems" ...
VENDOR_PATTERNS = {"SIEMENS": r"SIEMENS", "GE": r"\bGE(MS)?\b|GENERAL ELECTRIC",
                   "PHILIPS": r"PHILIPS"}  # fmt: skip

#: Plausible injected activity (Bq): 1 MBq .. 50 GBq (diagnostic PET ~100-800 MBq).
DOSE_RANGE_BQ = (1e6, 5e10)
#: Plausible patient weight (kg).
WEIGHT_RANGE_KG = (1.0, 350.0)
#: Half-lives (s) of PET nuclides: a RadionuclideHalfLife equal to one of them in minutes (e.g.
#: 109.77 for F-18) is refused as "minutes, not seconds".
PET_HALF_LIVES_S = {"F-18": 6586.2, "Ga-68": 4062.6, "C-11": 1220.04, "N-13": 597.9,
                    "O-15": 122.24, "Rb-82": 76.38, "Cu-64": 45720.0, "Zr-89": 282276.0,
                    "I-124": 360806.0}  # fmt: skip
#: Shortest half-life of a clinical PET nuclide (Rb-82: 76 s); below, it is not in seconds.
MIN_HALF_LIFE_S = 60.0
#: Longest uptake time accepted between injection and scan (h).
MAX_UPTAKE_H = 24.0
#: A start time without date is taken on the scan's day only for nuclides shorter-lived than
#: this (s; 11.5 h, the IBSI SUV manual's threshold): Zr-89 or I-124 scans may be days later.
MAX_HALF_LIFE_TIME_ONLY_S = 41400.0


def _parse_dt(date: str | None, time: str | None) -> dt.datetime | None:
    if not date or not time:
        return None
    time = str(time).strip().split("+")[0].split("-")[0]
    whole, _, frac = time.partition(".")
    whole = whole.ljust(6, "0")
    try:
        value = dt.datetime.strptime(f"{str(date).strip()}{whole}", "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return value + dt.timedelta(microseconds=int((frac + "000000")[:6])) if frac else value


def _parse_datetime(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    value = str(value).strip().split("+")[0]
    return _parse_dt(value[:8], value[8:]) if len(value) >= 12 else None


def _values(ds, keyword: str) -> list[str]:
    """A multi-valued string tag as upper-case strings (a single value is a one-item list)."""
    value = getattr(ds, keyword, None)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value.strip().upper()]
    return [str(v).strip().upper() for v in value]


def _require(ds, keyword: str, where: Path, why: str):
    value = getattr(ds, keyword, None)
    if value is None or value == "":
        raise LionError(f"{where}: DICOM tag {keyword} is missing; it is needed for {why}")
    return value


def vendor(ds) -> str:
    """The vendor Manufacturer names: SIEMENS, GE or PHILIPS (any case, extra words), else ""."""
    name = str(getattr(ds, "Manufacturer", "") or "")
    return next((v for v, p in VENDOR_PATTERNS.items() if re.search(p, name, re.I)), "")


def _private(ds, group: int, creator: str, offset: int, maker: str = ""):
    """Value of a private element found through its private creator (any block), or None.

    Without that private creator and when ``maker`` names the series' vendor (:func:`vendor`),
    the element at the conventional block 0x10, (group, 0x1000 + offset), as writers that omit
    the creator element (the IBSI reference objects, some anonymisers) leave it.
    """
    try:
        value = ds.private_block(group, creator)[offset].value
    except KeyError:
        element = ds.get((group, 0x1000 + offset)) if maker and vendor(ds) == maker else None
        creators = ds.get((group, 0x0010))
        if element is None or (creators is not None and str(creators.value).strip()):
            return None  # the conventional block belongs to another creator
        value = element.value
    if isinstance(value, bytes):  # VR UN (implicit VR without a private dictionary entry)
        value = value.decode("ascii", "replace").strip("\x00 ")
    if isinstance(value, str):
        value = value.strip() or None
    return value


def check_static_pet(ds, where: Path) -> None:
    """Refuse non-PET, multi-frame and dynamic/gated series (one sentence each).

    Dynamic/gated is read from SeriesType, NumberOfTimeSlices and NumberOfTimeSlots only: the
    FrameReferenceTime and DecayFactor of a static multi-bed series differ per bed position.
    """
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
    series_type = _values(ds, "SeriesType")
    slices = int(getattr(ds, "NumberOfTimeSlices", 1) or 1)
    slots = int(getattr(ds, "NumberOfTimeSlots", 1) or 1)
    if slices > 1 or slots > 1 or {"DYNAMIC", "GATED"} & set(series_type[:1]):
        shown = "/".join(series_type) or "-"
        raise LionError(
            f"{where}: dynamic/gated PET (SeriesType {shown}, "
            f"NumberOfTimeSlices {slices}, NumberOfTimeSlots {slots}) is not supported; give a "
            "static whole-body series"
        )


def _check_weight(weight_kg: float, where: Path) -> None:
    lo, hi = WEIGHT_RANGE_KG
    if weight_kg > hi and lo <= weight_kg / 1000.0 <= hi:
        raise LionError(
            f"{where}: PatientWeight {weight_kg:g} kg is implausible; it looks like grams "
            f"({weight_kg / 1000:g} kg), and DICOM stores kg: correct the tag (0010,1030)"
        )
    if not lo <= weight_kg <= hi:
        raise LionError(
            f"{where}: PatientWeight {weight_kg:g} kg is outside the plausible {lo:g}-{hi:g} kg; "
            "correct the tag (0010,1030)"
        )


def _check_dose(dose: float, where: Path) -> None:
    lo, hi = DOSE_RANGE_BQ
    if dose < lo and lo <= dose * 1e6 <= hi:
        raise LionError(
            f"{where}: RadionuclideTotalDose {dose:g} Bq is implausible; it looks like MBq "
            f"({dose * 1e6:.4g} Bq), and DICOM stores Bq: correct the tag (0018,1074)"
        )
    if not lo <= dose <= hi:
        raise LionError(
            f"{where}: RadionuclideTotalDose {dose:g} Bq is outside the plausible {lo:g}-{hi:g} "
            "Bq; correct the tag (0018,1074)"
        )


def _check_half_life(half_life: float, where: Path) -> None:
    def near(a: float, b: float) -> bool:
        return abs(a - b) <= 0.01 * b

    in_minutes = [n for n, t in PET_HALF_LIVES_S.items() if near(half_life * 60.0, t)]
    in_seconds = [n for n, t in PET_HALF_LIVES_S.items() if near(half_life, t)]
    if half_life < MIN_HALF_LIFE_S or (in_minutes and not in_seconds):
        guess = f" ({in_minutes[0]} in minutes?)" if in_minutes else ""
        raise LionError(
            f"{where}: RadionuclideHalfLife {half_life:g} s is implausible{guess}; DICOM stores "
            "seconds: correct the tag (0018,1075), e.g. 6586.2 s for F-18"
        )


def injection_time(ds, scan: dt.datetime, where: Path) -> dt.datetime:
    """Injection date-time: RadiopharmaceuticalStartDateTime, else StartTime on the scan's date.

    A start time without date after ``scan`` is taken from the day before (injection before
    midnight, scan after midnight), as QIBA's pseudo-code asks ("consider spanning midnight").
    """
    rp = _require(ds, "RadiopharmaceuticalInformationSequence", where, "the injected dose")[0]
    injection = _parse_datetime(getattr(rp, "RadiopharmaceuticalStartDateTime", None))
    if injection is None:
        start = _require(rp, "RadiopharmaceuticalStartTime", where, "decay correction")
        half_life = _number(rp, "RadionuclideHalfLife")
        if half_life is not None and half_life >= MAX_HALF_LIFE_TIME_ONLY_S:
            raise LionError(
                f"{where}: only RadiopharmaceuticalStartTime (no date) is given for a nuclide "
                f"with a half-life of {half_life:g} s, whose uptake may span days; give "
                "RadiopharmaceuticalStartDateTime (0018,1078)"
            )
        injection = _parse_dt(scan.strftime("%Y%m%d"), start)
        if injection is not None and injection > scan:
            injection -= dt.timedelta(days=1)
    if injection is None:
        raise LionError(
            f"{where}: RadiopharmaceuticalStartDateTime/StartTime unreadable; needed for decay "
            "correction"
        )
    hours = (scan - injection).total_seconds() / 3600.0
    if hours < 0 or hours > MAX_UPTAKE_H:
        raise LionError(
            f"{where}: scan {scan} is {hours:.2f} h after the injection {injection}; expected "
            f"0-{MAX_UPTAKE_H:g} h: check RadiopharmaceuticalStartDateTime/StartTime and "
            "SeriesDate/SeriesTime"
        )
    return injection


def time_of_average_activity(lam: float, frame_s: float) -> float:
    """T_ave (s): when the activity equals its mean over a frame of ``frame_s`` seconds.

    ln(lambda T / (1 - exp(-lambda T))) / lambda (DICOM PS3.3 C.8.9.4.1.5, IBSI SUV manual); T/2
    for a long-lived nuclide, 0 for a zero-length frame.
    """
    x = lam * frame_s
    return math.log(x / -math.expm1(-x)) / lam if x > 0 else 0.0


def _acquisition(ds) -> dt.datetime | None:
    """AcquisitionDate (else SeriesDate) + AcquisitionTime, else AcquisitionDateTime."""
    date = getattr(ds, "AcquisitionDate", None) or getattr(ds, "SeriesDate", None)
    value = _parse_dt(date, getattr(ds, "AcquisitionTime", None))
    return value if value is not None else _parse_datetime(getattr(ds, "AcquisitionDateTime", None))


def earliest_acquisition(headers: list) -> dt.datetime | None:
    """The earliest AcquisitionDate/Time of a series' slices (the scan start QIBA compares with)."""
    return min((t for t in map(_acquisition, headers) if t is not None), default=None)


def start_reference(
    ds, where: Path, lam: float, earliest: dt.datetime | None = None
) -> tuple[dt.datetime, str]:
    """Scan start a DecayCorrection START frame is corrected to, and the rule that gave it.

    QIBA's vendor-neutral pseudo-code, branch by branch (module docstring), from this frame's
    tags and ``earliest``, the series' earliest AcquisitionDate/Time
    (:func:`earliest_acquisition`; default: this frame's own). Raises LionError naming the
    missing tags when no rule applies.
    """
    acquisition = _acquisition(ds)
    earliest = earliest or acquisition
    series = _parse_dt(getattr(ds, "SeriesDate", None), getattr(ds, "SeriesTime", None))
    if series is not None and earliest is not None and series <= earliest:
        return series, "SeriesDate/Time (not after the acquisition)"
    # SeriesDate/Time after the acquisition: a post-processed series
    maker = vendor(ds)
    private = {"SIEMENS": (0x0071, SIEMENS_CREATOR, SIEMENS_DECAY_DATETIME),
               "GE": (0x0009, GE_CREATOR, GE_SCAN_DATETIME)}.get(maker)  # fmt: skip
    if private is not None:
        value = _parse_datetime(_private(ds, *private, maker=maker))
        if value is not None:
            return value, f"{maker} private scan start ({private[0]:04X},{0x1000 + private[2]:04X})"
    reference_ms = _number(ds, "FrameReferenceTime")
    duration_ms = _number(ds, "ActualFrameDuration")
    if acquisition is not None and reference_ms is not None and reference_ms >= 0:
        if maker == "GE":
            return acquisition - dt.timedelta(milliseconds=reference_ms), "GE: acquisition - FRT"
        if reference_ms == 0:
            return earliest, "earliest acquisition (FrameReferenceTime 0)"
        if duration_ms is not None and duration_ms > 0:
            t_ave = time_of_average_activity(lam, duration_ms / 1000.0)
            shift = dt.timedelta(seconds=t_ave - reference_ms / 1000.0)
            return acquisition + shift, "acquisition + T_ave - FRT"
    missing = [name for name, value in (("AcquisitionDate/Time", acquisition),
               ("FrameReferenceTime", reference_ms), ("ActualFrameDuration", duration_ms))
               if value is None or (name == "ActualFrameDuration" and value <= 0)]  # fmt: skip
    raise LionError(
        f"{where}: DecayCorrection START but the scan start cannot be determined: SeriesDate/Time "
        f"is after the acquisition (a post-processed series), no vendor private scan start, and "
        f"{', '.join(missing) or 'FrameReferenceTime'} is missing or not positive; export the "
        "series with FrameReferenceTime and ActualFrameDuration, or in SUV (Units GML)"
    )


def _number(ds, keyword: str) -> float | None:
    value = getattr(ds, keyword, None)
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _frame_start(ds, where: Path) -> dt.datetime:
    start = _acquisition(ds)
    if start is None:
        raise LionError(
            f"{where}: AcquisitionDate/AcquisitionTime missing; DecayCorrection NONE needs each "
            "frame's start"
        )
    return start


def _bqml_scale(ds, where: Path, earliest: dt.datetime | None) -> float:
    """SUVbw per Bq/ml for this slice: weight (g) / dose decayed to the time its values refer to."""
    weight_kg = float(_require(ds, "PatientWeight", where, "body-weight SUV"))
    _check_weight(weight_kg, where)
    rp = _require(ds, "RadiopharmaceuticalInformationSequence", where, "the injected dose")[0]
    dose = float(_require(rp, "RadionuclideTotalDose", where, "body-weight SUV"))
    _check_dose(dose, where)
    correction = str(getattr(ds, "DecayCorrection", "")).strip().upper()
    if correction == "ADMIN":
        return weight_kg * 1000.0 / dose
    if correction not in ("START", "NONE"):
        raise LionError(
            f"{where}: DecayCorrection {correction or 'missing'}; expected START, ADMIN or NONE"
        )
    half_life = float(_require(rp, "RadionuclideHalfLife", where, "decay correction"))
    _check_half_life(half_life, where)
    lam = math.log(2) / half_life
    if correction == "START":
        reference, _ = start_reference(ds, where, lam, earliest)
        seconds = (reference - injection_time(ds, reference, where)).total_seconds()
        return weight_kg * 1000.0 / (dose * math.exp(-lam * seconds))
    start = _frame_start(ds, where)  # NONE: mean activity over this slice's frame
    duration_ms = float(_require(ds, "ActualFrameDuration", where, "DecayCorrection NONE"))
    injection = injection_time(ds, start, where)
    lam_t = lam * duration_ms / 1000.0
    in_frame = (1.0 - math.exp(-lam_t)) / lam_t if lam_t > 0 else 1.0
    decayed = dose * math.exp(-lam * (start - injection).total_seconds()) * in_frame
    return weight_kg * 1000.0 / decayed


SUV_TYPE_NAMES = {"LBM": "lean body mass by the James method (male multiplier 120 or 128 not "
                  "recorded)", "IBW": "ideal body weight", "BSA": "body surface area"}  # fmt: skip


def lean_body_mass_kg(ds, suv_type: str, weight_kg: float, where: Path) -> float:
    """Lean body mass (kg) by the formula DICOM's SUVType names (PS3.3 PET Series module).

    LBMJAMES128: James, male 1.10 W - 128 (W/H)^2, female 1.07 W - 148 (W/H)^2 (H in cm);
    LBMJANMA: Janmahasatian, male 9270 W / (6680 + 216 BMI), female 9270 W / (8780 + 244 BMI).
    Needs PatientSize (m) and PatientSex (M/F).
    """
    height_m = float(_require(ds, "PatientSize", where, f"SUVType {suv_type}"))
    if not 0.4 <= height_m <= 2.5:
        hint = " (it looks like cm; DICOM stores m)" if 40 <= height_m <= 250 else ""
        raise LionError(
            f"{where}: PatientSize {height_m:g} m is implausible{hint}; correct the tag (0010,1020)"
        )
    sex = str(getattr(ds, "PatientSex", "") or "").strip().upper()
    if sex not in ("M", "F"):
        raise LionError(
            f"{where}: SUVType {suv_type} needs PatientSex M or F to undo the lean-body-mass "
            f"normalisation, found {sex or 'none'}; export the series in BQML"
        )
    if suv_type == "LBMJAMES128":
        ratio = (weight_kg / (height_m * 100.0)) ** 2
        lbm = 1.10 * weight_kg - 128 * ratio if sex == "M" else 1.07 * weight_kg - 148 * ratio
    else:
        bmi = weight_kg / height_m**2
        lbm = 9270 * weight_kg / ((6680 + 216 * bmi) if sex == "M" else (8780 + 244 * bmi))
    if not 0 < lbm <= weight_kg:
        raise LionError(
            f"{where}: {suv_type} lean body mass {lbm:.1f} kg for {weight_kg:g} kg, "
            f"{height_m:g} m is not usable (the James formula breaks down in obesity); export "
            "the series in BQML"
        )
    return lbm


def suv_scale(ds, where: Path, earliest: dt.datetime | None = None) -> float:
    """Factor turning this slice's rescaled values into body-weight SUV (g/ml).

    Args:
        ds: the slice's pydicom dataset.
        where: file (for messages).
        earliest: the series' earliest AcquisitionDate/Time (:func:`earliest_acquisition`),
            which DecayCorrection START compares SeriesDate/Time with (:func:`start_reference`);
            default: this slice's own. Unused for ADMIN and NONE.
    """
    units = str(getattr(ds, "Units", "")).strip().upper()
    if units == "GML":
        suv_type = str(getattr(ds, "SUVType", "") or "BW").strip().upper()
        if suv_type == "BW":
            return 1.0
        if suv_type in ("LBMJAMES128", "LBMJANMA"):  # SUVlbm -> SUVbw = SUVlbm x weight / LBM
            weight_kg = float(_require(ds, "PatientWeight", where, f"SUVType {suv_type}"))
            _check_weight(weight_kg, where)
            return weight_kg / lean_body_mass_kg(ds, suv_type, weight_kg, where)
        raise LionError(
            f"{where}: Units GML with SUVType {suv_type}: the series holds SUV normalised by "
            f"{SUV_TYPE_NAMES.get(suv_type, suv_type)}, not body weight, and DICOM does not "
            "define its formula, so SUVbw cannot be recovered; export the series in BQML"
        )
    if units == "CNTS":
        suv_factor = _private(ds, 0x7053, PHILIPS_CREATOR, PHILIPS_SUV_FACTOR, "PHILIPS")
        if suv_factor is not None and float(suv_factor) > 0:
            return float(suv_factor)
        bqml_factor = _private(ds, 0x7053, PHILIPS_CREATOR, PHILIPS_BQML_FACTOR, "PHILIPS")
        if bqml_factor is not None and float(bqml_factor) > 0:
            return float(bqml_factor) * _bqml_scale(ds, where, earliest)
        found = "is 0 (Philips: cannot convert)" if suv_factor is not None else "is missing"
        raise LionError(
            f"{where}: Units CNTS and the Philips SUV scale factor (7053,xx00 of "
            f"'{PHILIPS_CREATOR}') {found}, with no activity concentration factor (7053,xx09); "
            "export the series in BQML"
        )
    if units == "BQML":
        return _bqml_scale(ds, where, earliest)
    raise LionError(f"{where}: Units {units or 'missing'}; expected BQML, CNTS or GML")


def check_suv_values(suv: np.ndarray, where: str | Path) -> None:
    """Refuse an array that is not SUV: :func:`lion_nnunet.inference.plausibility.check_pet_values`.

    The name predates the shared checks; they also warn (negatives, label-map-like, kBq/ml-like)
    and refuse CT-like values, for DICOM-converted and NIfTI PET alike.
    """
    check_pet_values(suv, where)


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


def sort_slices(files: list[Path], headers: list) -> tuple[list[Path], list, sitk.Image]:
    """Order a single-frame series along the slice normal; its geometry as an empty image.

    Returns:
        (files, headers) in slice order and a SimpleITK image (x, y, z) with the series' size,
        spacing (mm), origin and direction. Refuses repeated positions and uneven slice gaps.
    """
    where = Path(files[0]).parent
    pairs = zip(headers, files, strict=True)
    positions = np.array([_position_along_normal(h, Path(f)) for h, f in pairs])
    order = np.argsort(positions, kind="stable")
    files, headers = [files[i] for i in order], [headers[i] for i in order]
    positions = positions[order]
    first = headers[0]
    rows, cols = int(first.Rows), int(first.Columns)
    if any((int(h.Rows), int(h.Columns)) != (rows, cols) for h in headers):
        raise LionError(f"{where}: slices differ in size; not one volume")
    gaps = np.diff(positions)
    if len(gaps) and gaps.min() < 1e-3:
        raise LionError(
            f"{where}: {int((gaps < 1e-3).sum()) + 1} slices share a position (duplicate files, or "
            "frames of a dynamic/gated series without SeriesType); give one static series"
        )
    if len(gaps) and gaps.max() - gaps.min() > max(0.01, 0.01 * float(np.median(gaps))):
        raise LionError(
            f"{where}: slice spacing varies from {gaps.min():.3f} to {gaps.max():.3f} mm (missing "
            "slices or overlapping beds not merged); give a series with evenly spaced slices"
        )
    iop = np.array(first.ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    spacing = _require(first, "PixelSpacing", where, "the image geometry")
    pixel = [float(v) for v in spacing]  # (row spacing = y, column spacing = x)
    dz = float(np.median(gaps)) if len(gaps) else float(getattr(first, "SliceThickness", 1) or 1)
    image = sitk.Image([cols, rows, len(files)], sitk.sitkUInt8)
    image.SetSpacing((pixel[1], pixel[0], dz))
    image.SetOrigin(tuple(float(v) for v in first.ImagePositionPatient))
    image.SetDirection(tuple(np.column_stack([iop[:3], iop[3:], normal]).ravel()))
    return files, headers, image


def rescaled_pixels(path: Path):
    """(pixel values x RescaleSlope + RescaleIntercept as float64 (rows, columns), dataset)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path)
        value = ds.pixel_array.astype(np.float64)
    except Exception as e:  # pydicom raises many types (missing codec, truncated file)
        raise LionError(f"{path}: cannot read the pixel data ({e})") from None
    value *= float(getattr(ds, "RescaleSlope", 1) or 1)
    value += float(getattr(ds, "RescaleIntercept", 0) or 0)
    return value, ds


def _log_decay_rules(headers: list, where: Path) -> None:
    """Say which scan-start rules a START series used; warn for an unverified vendor."""
    first = headers[0]
    if str(getattr(first, "DecayCorrection", "")).strip().upper() != "START":
        return
    if str(getattr(first, "Units", "")).strip().upper() not in ("BQML", "CNTS"):
        return
    try:
        rp = first.RadiopharmaceuticalInformationSequence[0]
        lam = math.log(2) / float(rp.RadionuclideHalfLife)
        earliest = earliest_acquisition(headers)
        rules = sorted({start_reference(h, where, lam, earliest)[1] for h in headers})
    except (AttributeError, IndexError, TypeError, ValueError, ZeroDivisionError, LionError):
        return  # suv_scale reports the problem with the slice's name
    log.info("%s: scan start from %s", where, "; ".join(rules))
    if "acquisition + T_ave - FRT" in rules and not vendor(first):
        log.warning(
            "%s: Manufacturer %r is not Siemens, GE or Philips; the scan start was "
            "back-computed with the general formula (acquisition + T_ave - FrameReferenceTime), "
            "which the IBSI SUV manual has not verified for this vendor",
            where, str(getattr(first, "Manufacturer", "")),
        )  # fmt: skip


def read_suv_series(files: list[Path]) -> sitk.Image:
    """Read one static PET series (files of one SeriesInstanceUID) as an SUVbw float32 image."""
    import pydicom

    if not files:
        raise LionError("no DICOM files given")
    where = Path(files[0]).parent
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    for h in headers[:1] + [h for h in headers[1:] if "NumberOfTimeSlices" in h][:1]:
        check_static_pet(h, where)
    files, headers, geometry = sort_slices([Path(f) for f in files], headers)
    _log_decay_rules(headers, where)
    earliest = earliest_acquisition(headers)
    slices = []
    for f, h in zip(files, headers, strict=True):
        value, _ = rescaled_pixels(f)
        slices.append((value * suv_scale(h, f, earliest)).astype(np.float32))
    array = np.stack(slices)
    check_suv_values(array, where)
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(geometry)
    return image
