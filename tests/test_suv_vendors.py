"""SUV from vendor-like PET DICOM (Siemens multi-bed, Philips CNTS, GE post-processed, NONE, ...).

Every expected SUV is computed here by hand from QIBA's vendor-neutral pseudo-code:
    decayedDose = injectedDose * 2 ** (-decayTime / halfLife)
    SUVbw = (stored * RescaleSlope + RescaleIntercept) * weight_kg * 1000 / decayedDose
(Philips CNTS: x the SUV scale factor, or (7053,1009) -> Bq/ml then as BQML), and for
DecayCorrection NONE the DICOM definition of an uncorrected frame: the mean activity over the
frame, i.e. the dose decayed to the frame start times (1 - exp(-lambda T)) / (lambda T).
The scan start of a START frame follows the IBSI SUV manual (github.com/oncoray/suv_computation,
docs/suv.html, CC BY 4.0): vendor private scan start, else AcquisitionDate/Time when it equals
SeriesDate/Time, else AcquisitionDate/Time + T_ave - FrameReferenceTime (GE: without T_ave).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from cornerstone_suv import CornerstoneError, cornerstone_suv, skip_reason
from fixtures_dicom import pet_series

from lion_nnunet.errors import LionError
from lion_nnunet.inference.suv import check_suv_values, read_suv_series

HALF_LIFE = 6586.2  # F-18 (s)
DOSE, WEIGHT = 3.5e8, 78.0  # Bq, kg
RP = {"RadiopharmaceuticalStartDateTime": "20240506085500", "RadionuclideTotalDose": "3.5e8",
      "RadionuclideHalfLife": "6586.2", "Radiopharmaceutical": "Fluorodeoxyglucose"}  # fmt: skip
BEDS = 3  # two slices per bed, 3 mm apart, beds merged into one evenly spaced volume
SLOPES = [0.0231, 0.0242, 0.0187, 0.0199, 0.0275, 0.0211]
Z_MM = [0.0, 3.0, 6.0, 9.0, 12.0, 15.0]


def _stored() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 30000, (4, 5)).astype(np.uint16) for _ in SLOPES]


def _bed(k: int) -> int:
    return k // 2


def _series(folder: Path, per_bed: list[dict] | None = None, rp: dict | None = None,
            implicit_vr: bool = False, **tags):  # fmt: skip
    common = {"Units": "BQML", "DecayCorrection": "START", "PatientWeight": "78",
              "SeriesDate": "20240506", "SeriesTime": "100000", "AcquisitionDate": "20240506",
              "ActualFrameDuration": 180000, "Manufacturer": "SIEMENS"}  # fmt: skip
    common.update(tags)
    per_slice = [dict((per_bed or [{}] * BEDS)[_bed(k)]) for k in range(len(SLOPES))]
    return pet_series(folder, _stored(), SLOPES, Z_MM, per_slice, rp=rp or RP,
                      implicit_vr=implicit_vr, **common)  # fmt: skip


def _rescaled() -> np.ndarray:
    return np.stack([s.astype(np.float64) * m for s, m in zip(_stored(), SLOPES, strict=True)])


def _read(files: list[Path]) -> np.ndarray:
    return sitk.GetArrayFromImage(read_suv_series(files)).astype(np.float64)


def _t_ave(frame_s: float = 180.0) -> float:
    """Time of average activity in a frame (s), by the DICOM/IBSI formula, by hand."""
    lam_t = math.log(2) / HALF_LIFE * frame_s
    return math.log(lam_t / (1 - math.exp(-lam_t))) / (math.log(2) / HALF_LIFE)


def _frt(offset_s: float, t_ave: bool = True) -> str:
    """FrameReferenceTime (ms) of a frame starting offset_s after the scan start (DICOM: from
    the series reference time to the time the values occurred, acquisition + T_ave)."""
    return f"{(offset_s + (_t_ave() if t_ave else 0.0)) * 1000:.3f}"


SIEMENS_BEDS = [  # per bed: acquisition start, FrameReferenceTime (ms), DecayFactor, as Siemens
    {"AcquisitionTime": "100000", "FrameReferenceTime": _frt(0), "DecayFactor": "1.00950"},
    {"AcquisitionTime": "100300", "FrameReferenceTime": _frt(180), "DecayFactor": "1.02889"},
    {"AcquisitionTime": "100600", "FrameReferenceTime": _frt(360), "DecayFactor": "1.04865"},
]


def test_siemens_static_multibed_is_static_and_decay_corrected_to_series_start(tmp_path):
    files = _series(tmp_path / "siemens", SIEMENS_BEDS)
    image = read_suv_series(files)
    decayed = DOSE * 2 ** (-(65 * 60) / HALF_LIFE)  # 08:55 injection -> 10:00 series start
    np.testing.assert_allclose(_read(files), _rescaled() * WEIGHT * 1000 / decayed, rtol=1e-6)
    assert image.GetSpacing() == pytest.approx((4.0, 4.0, 3.0))
    assert image.GetOrigin() == pytest.approx((-10.0, -8.0, 0.0))


@pytest.mark.parametrize(
    ("tags", "found"),
    [({"SeriesType": "DYNAMIC"}, "SeriesType DYNAMIC"),  # single-valued, as some exports write
     ({"SeriesType": ["GATED", "IMAGE"], "NumberOfTimeSlots": 8}, "NumberOfTimeSlots 8"),
     ({"SeriesType": ["DYNAMIC", "IMAGE"], "NumberOfTimeSlices": 6}, "NumberOfTimeSlices 6")],
)  # fmt: skip
def test_dynamic_and_gated_are_refused(tmp_path, tags, found):
    files = _series(tmp_path / "dyn", SIEMENS_BEDS, **tags)
    with pytest.raises(LionError, match=f"dynamic/gated PET .*{found}"):
        read_suv_series(files)


def test_post_processed_series_back_computes_the_scan_start_per_frame(tmp_path):
    # reconstructed again at 14:30: SeriesTime is the reconstruction time, not the scan start;
    # the first bed was cropped away, so the earliest acquisition (10:03) is not the start either
    files = _series(tmp_path / "reproc", SIEMENS_BEDS[1:] + SIEMENS_BEDS[1:2],
                    SeriesTime="143000")  # fmt: skip
    decayed = DOSE * 2 ** (-(65 * 60) / HALF_LIFE)  # acquisition + T_ave - FRT = 10:00:00
    np.testing.assert_allclose(_read(files), _rescaled() * WEIGHT * 1000 / decayed, rtol=1e-6)


def test_siemens_private_decay_datetime_comes_first(tmp_path):
    siemens = [(0x00710010, "LO", "SIEMENS MED PT"), (0x00711022, "DT", "20240506095900")]
    files = _series(tmp_path / "s", SIEMENS_BEDS, SeriesTime="143000", private=siemens)
    decayed = DOSE * 2 ** (-(64 * 60) / HALF_LIFE)  # (0071,1022) 09:59, not the FRT's 10:00
    np.testing.assert_allclose(_read(files), _rescaled() * WEIGHT * 1000 / decayed, rtol=1e-6)


def test_ge_without_private_scan_time_uses_acquisition_minus_frame_reference_time(tmp_path):
    # GE corrects to one FrameReferenceTime before AcquisitionTime (no T_ave; IBSI manual)
    beds = [{"AcquisitionTime": t, "FrameReferenceTime": _frt(o, t_ave=False)}
            for t, o in (("100000", 0), ("100300", 180), ("100600", 360))]  # fmt: skip
    files = _series(tmp_path / "ge", beds, SeriesTime="143000", Manufacturer="GE MEDICAL SYSTEMS")
    decayed = DOSE * 2 ** (-(65 * 60) / HALF_LIFE)
    np.testing.assert_allclose(_read(files), _rescaled() * WEIGHT * 1000 / decayed, rtol=1e-6)


def test_general_formula_for_an_unknown_vendor_is_used_with_a_warning(tmp_path, caplog):
    files = _series(tmp_path / "x", SIEMENS_BEDS, SeriesTime="143000", Manufacturer="ACME PET")
    decayed = DOSE * 2 ** (-(65 * 60) / HALF_LIFE)
    np.testing.assert_allclose(_read(files), _rescaled() * WEIGHT * 1000 / decayed, rtol=1e-6)
    assert "Manufacturer 'ACME PET' is not Siemens, GE or Philips" in caplog.text
    caplog.clear()
    _read(_series(tmp_path / "s", SIEMENS_BEDS, SeriesTime="143000"))
    assert "is not Siemens" not in caplog.text


def _philips_static_bed(folder: Path) -> list[Path]:
    """A Philips BQML static bed as exported: DecayCorrection START, FrameReferenceTime 1328.7 s,
    ActualFrameDuration 120.7 s, SeriesTime 10:00:00 one second before AcquisitionTime."""
    bed = {"AcquisitionTime": "100001", "FrameReferenceTime": "1328700.0"}
    return _series(folder, [bed] * BEDS, Manufacturer="Philips Medical Systems",
                   ActualFrameDuration=120700)  # fmt: skip


def _post_processed_frt_zero(folder: Path) -> list[Path]:
    """A post-processed series: SeriesTime 14:30 after the 10:00 acquisition, one bed of 180 s,
    FrameReferenceTime 0."""
    bed = {"AcquisitionTime": "100000", "FrameReferenceTime": "0"}
    return _series(folder, [bed] * BEDS, SeriesTime="143000")


def test_series_time_not_after_the_acquisition_is_the_scan_start(tmp_path):
    # QIBA: SeriesDate/Time not after AcquisitionDate/Time -> scan time = series time (10:00:00),
    # whatever FrameReferenceTime says (here 1328.7 s; its frame rule would go 21 min back)
    decayed = DOSE * 2 ** (-(65 * 60) / HALF_LIFE)  # 08:55 -> 10:00:00
    got = _read(_philips_static_bed(tmp_path / "p"))
    np.testing.assert_allclose(got, _rescaled() * WEIGHT * 1000 / decayed, rtol=1e-6)


def test_post_processed_with_frame_reference_time_zero_uses_the_acquisition(tmp_path):
    # QIBA's frame rule needs FrameReferenceTime > 0; with 0 the scan start is the acquisition
    # (10:00), not the acquisition + T_ave (90 s later)
    decayed = DOSE * 2 ** (-(65 * 60) / HALF_LIFE)
    got = _read(_post_processed_frt_zero(tmp_path / "pp"))
    np.testing.assert_allclose(got, _rescaled() * WEIGHT * 1000 / decayed, rtol=1e-6)


def test_start_frame_without_a_usable_scan_start_is_refused(tmp_path):
    # Series time after acquisition, no private tag, no ActualFrameDuration (IBSI DRO_error_3_2)
    files = _series(tmp_path / "nofd", SIEMENS_BEDS, SeriesTime="143000", ActualFrameDuration="")
    with pytest.raises(LionError, match=r"scan start cannot be determined.*ActualFrameDuration"):
        read_suv_series(files)


def test_series_reconstructed_days_later_with_injection_time_only(tmp_path):
    # SeriesDate/Time are a re-reconstruction a week later; the injection has a time, no date:
    # it is taken on the scan's (earliest acquisition's) date, not on the SeriesDate
    rp = {k: v for k, v in RP.items() if k != "RadiopharmaceuticalStartDateTime"}
    rp["RadiopharmaceuticalStartTime"] = "085500"
    files = _series(tmp_path / "later", SIEMENS_BEDS, rp=rp, SeriesDate="20240513",
                    SeriesTime="143000")  # fmt: skip
    decayed = DOSE * 2 ** (-(65 * 60) / HALF_LIFE)
    np.testing.assert_allclose(_read(files), _rescaled() * WEIGHT * 1000 / decayed, rtol=1e-6)


def test_ge_post_processed_series_uses_ge_scan_datetime(tmp_path):
    ge = [(0x00090010, "LO", "GEMS_PETD_01"), (0x0009100D, "DT", "20240506095800")]
    files = _series(tmp_path / "ge", SIEMENS_BEDS, SeriesTime="143000", private=ge,
                    Manufacturer="GE MEDICAL SYSTEMS")  # fmt: skip
    decayed = DOSE * 2 ** (-(63 * 60) / HALF_LIFE)  # QIBA: GE private scan date-time 09:58
    np.testing.assert_allclose(_read(files), _rescaled() * WEIGHT * 1000 / decayed, rtol=1e-6)


def test_injection_before_midnight_scan_after_midnight(tmp_path):
    rp = {k: v for k, v in RP.items() if k != "RadiopharmaceuticalStartDateTime"}
    rp["RadiopharmaceuticalStartTime"] = "234000"  # no date: 23:40 on the day before the scan
    beds = [{"AcquisitionTime": t, "FrameReferenceTime": _frt(o)}
            for t, o in (("004500", 0), ("004800", 180), ("005100", 360))]  # fmt: skip
    files = _series(tmp_path / "night", beds, rp=rp, SeriesDate="20240507", SeriesTime="004500",
                    AcquisitionDate="20240507")  # fmt: skip
    decayed = DOSE * 2 ** (-(65 * 60) / HALF_LIFE)  # 23:40 -> 00:45 is 65 min, not -23 h
    np.testing.assert_allclose(_read(files), _rescaled() * WEIGHT * 1000 / decayed, rtol=1e-6)


def test_decay_correction_none_per_frame_with_decay_during_frame(tmp_path):
    files = _series(tmp_path / "none", SIEMENS_BEDS, DecayCorrection="NONE",
                    CorrectedImage=["NORM", "ATTN", "SCAT", "RAN"])  # fmt: skip
    lam, frame = math.log(2) / HALF_LIFE, 180.0
    expected = []
    for k, value in enumerate(_rescaled()):
        start = 65 * 60 + 180 * _bed(k)  # this bed's frame start after injection (s)
        mean_dose = DOSE * 2 ** (-start / HALF_LIFE) * (1 - math.exp(-lam * frame)) / (lam * frame)
        expected.append(value * WEIGHT * 1000 / mean_dose)
    np.testing.assert_allclose(_read(files), np.stack(expected), rtol=1e-6)


def test_decay_correction_admin(tmp_path):
    files = _series(tmp_path / "admin", SIEMENS_BEDS, DecayCorrection="ADMIN")
    np.testing.assert_allclose(_read(files), _rescaled() * WEIGHT * 1000 / DOSE, rtol=1e-6)


PHILIPS_BEDS = [  # Philips: FrameReferenceTime = acquisition - series time + T_ave
    {"AcquisitionTime": t, "FrameReferenceTime": _frt(o)}
    for t, o in (("100000", 0), ("100300", 180), ("100600", 360))
]
DECOY = [(0x70530010, "LO", "ANOTHER VENDOR"), (0x70531000, "DS", "999")]  # not Philips' block


def _philips(folder: Path, suv_factor: str | None, bqml_factor: str | None):
    private = [*DECOY, (0x70530011, "LO", "Philips PET Private Group")]
    if suv_factor is not None:
        private.append((0x70531100, "DS", suv_factor))
    if bqml_factor is not None:
        private.append((0x70531109, "DS", bqml_factor))
    return _series(folder, PHILIPS_BEDS, Units="CNTS", Manufacturer="Philips Medical Systems",
                   private=private, implicit_vr=True)  # fmt: skip


def test_philips_counts_private_block_found_by_creator(tmp_path):
    files = _philips(tmp_path / "philips", "0.000412", "2.5")
    np.testing.assert_allclose(_read(files), _rescaled() * 0.000412, rtol=1e-6)


def test_philips_suv_factor_zero_falls_back_to_activity_concentration_factor(tmp_path):
    files = _philips(tmp_path / "philips0", "0", "2.5")
    decayed = DOSE * 2 ** (-(65 * 60) / HALF_LIFE)
    expected = _rescaled() * 2.5 * WEIGHT * 1000 / decayed  # (7053,1009): counts -> Bq/ml
    np.testing.assert_allclose(_read(files), expected, rtol=1e-6)


@pytest.mark.parametrize("which", ["suv", "bqml"])
def test_philips_factor_without_private_creator(tmp_path, which):
    # (7053,1000)/(7053,1009) written without their creator element (IBSI DRO_2_4/DRO_2_5):
    # read at the conventional address when the Manufacturer is Philips, not for another vendor
    tag = 0x70531000 if which == "suv" else 0x70531009
    kw = {"Units": "CNTS", "private": [(tag, "DS", "0.000412" if which == "suv" else "2.5")]}
    files = _series(tmp_path / which, PHILIPS_BEDS, Manufacturer="Philips", **kw)
    decayed = DOSE * 2 ** (-(65 * 60) / HALF_LIFE)
    factor = 0.000412 if which == "suv" else 2.5 * WEIGHT * 1000 / decayed
    np.testing.assert_allclose(_read(files), _rescaled() * factor, rtol=1e-6)
    other = _series(tmp_path / f"{which}_x", PHILIPS_BEDS, Manufacturer="ACME", **kw)
    with pytest.raises(LionError, match=r"Philips SUV scale factor .* is missing"):
        read_suv_series(other)


def test_philips_without_usable_factor_is_refused(tmp_path):
    with pytest.raises(LionError, match=r"is 0 \(Philips: cannot convert\)"):
        read_suv_series(_philips(tmp_path / "p", "0", None))


def test_gml_body_weight_taken_as_is_other_suv_types_refused(tmp_path):
    stored = _stored()
    files = _series(tmp_path / "gml", SIEMENS_BEDS, Units="GML", SUVType="BW")
    # GML values up to 30000 x 0.0275 = 825 cannot be SUV: refused; the same / 100 are taken
    with pytest.raises(LionError, match=r"PET maximum is \d+.*looks like Bq/ml"):
        read_suv_series(files)
    small = [s // 100 for s in stored]
    files = pet_series(tmp_path / "gml2", small, SLOPES, Z_MM, Units="GML", SUVType="BW",
                       DecayCorrection="START", SeriesDate="20240506", SeriesTime="100000",
                       rp=RP)  # fmt: skip
    expected = np.stack([s * m for s, m in zip(small, SLOPES, strict=True)])
    np.testing.assert_allclose(_read(files), expected, rtol=1e-6)
    for suv_type in ("LBM", "IBW"):  # LBM: James, male multiplier 120 or 128 not recorded
        other = pet_series(tmp_path / suv_type, small, SLOPES, Z_MM, Units="GML", SUVType=suv_type,
                           PatientWeight="78", PatientSize="1.80", rp=RP)  # fmt: skip
        with pytest.raises(LionError, match=f"Units GML with SUVType {suv_type}:"):
            read_suv_series(other)


@pytest.mark.parametrize(
    ("suv_type", "sex", "lbm_kg"),
    [  # DICOM PS3.3 SUVType formulas, by hand: W = 78 kg, H = 180 cm, BMI = 78 / 1.8^2
        ("LBMJANMA", "M", 9270 * 78 / (6680 + 216 * (78 / 1.8**2))),
        ("LBMJANMA", "F", 9270 * 78 / (8780 + 244 * (78 / 1.8**2))),
        ("LBMJAMES128", "M", 1.10 * 78 - 128 * (78 / 180) ** 2),
        ("LBMJAMES128", "F", 1.07 * 78 - 148 * (78 / 180) ** 2),
    ],
)
def test_gml_lean_body_mass_suv_back_to_body_weight(tmp_path, suv_type, sex, lbm_kg):
    small = [s // 100 for s in _stored()]  # SUL values as stored by the scanner
    files = pet_series(tmp_path / "sul", small, SLOPES, Z_MM, Units="GML", SUVType=suv_type,
                       PatientWeight="78", PatientSize="1.80", PatientSex=sex, rp=RP)  # fmt: skip
    sul = np.stack([s * m for s, m in zip(small, SLOPES, strict=True)])
    np.testing.assert_allclose(_read(files), sul * 78 / lbm_kg, rtol=1e-6)


def test_gml_lean_body_mass_needs_height_in_metres_and_sex(tmp_path):
    small = [s // 100 for s in _stored()]
    tags = {"Units": "GML", "SUVType": "LBMJANMA", "PatientWeight": "78", "rp": RP}
    cm = pet_series(tmp_path / "cm", small, SLOPES, Z_MM, PatientSize="180", **tags)
    with pytest.raises(LionError, match=r"PatientSize 180 m is implausible \(it looks like cm"):
        read_suv_series(cm)
    other = pet_series(tmp_path / "o", small, SLOPES, Z_MM, PatientSize="1.8", PatientSex="O",
                       **tags)  # fmt: skip
    with pytest.raises(LionError, match="needs PatientSex M or F"):
        read_suv_series(other)


@pytest.mark.parametrize(
    ("change", "message"),
    [({"rp": {**RP, "RadionuclideTotalDose": "350"}}, r"350 Bq is implausible; it looks like MBq"),
     ({"PatientWeight": "78000"}, r"78000 kg is implausible; it looks like grams"),
     ({"rp": {**RP, "RadionuclideHalfLife": "109.77"}},
      r"109.77 s is implausible \(F-18 in minutes\?\)"),
     ({"rp": {**RP, "RadiopharmaceuticalStartDateTime": "20240506103000"}},
      r"-0.50 h after the injection"),
     ({"Units": "PROPCNTS"}, "Units PROPCNTS; expected BQML, CNTS or GML")],
)  # fmt: skip
def test_silently_wrong_values_are_refused(tmp_path, change, message):
    rp = change.pop("rp", None)
    files = _series(tmp_path / "bad", SIEMENS_BEDS, rp=rp, **change)
    with pytest.raises(LionError, match=message):
        read_suv_series(files)


def test_uneven_slices_refused(tmp_path):
    files = pet_series(tmp_path / "gap", _stored(), SLOPES, [0, 3, 6, 12, 15, 18], Units="BQML",
                       DecayCorrection="ADMIN", PatientWeight="78", rp=RP)  # fmt: skip
    with pytest.raises(LionError, match=r"slice spacing varies from 3\.000 to 6\.000 mm"):
        read_suv_series(files)


def test_plausibility_of_nifti_values() -> None:
    check_suv_values(np.array([0.0, 3.2, 41.0]), "x.nii.gz")
    with pytest.raises(LionError, match=r"x\.nii\.gz: PET maximum is 12000.*looks like Bq/ml"):
        check_suv_values(np.array([0.0, 12000.0]), "x.nii.gz")
    with pytest.raises(LionError, match="PET is empty"):
        check_suv_values(np.zeros(3), "x.nii.gz")


def test_compressed_pacs_export_reads_the_same(tmp_path):
    """A PACS export in JPEG-LS Lossless gives the same SUV as the uncompressed series."""
    import pydicom
    from pydicom.uid import JPEGLSLossless

    yy, xx = np.mgrid[0:32, 0:32]
    stored = [(yy * 300 + xx * 40 + 100 * k).astype(np.uint16) for k in range(len(SLOPES))]
    files = pet_series(tmp_path / "raw", stored, SLOPES, Z_MM, Units="BQML",
                       DecayCorrection="ADMIN", PatientWeight="78", rp=RP)  # fmt: skip
    expected = _read(files)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(JPEGLSLossless)
        ds.save_as(f)
    assert pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID == JPEGLSLossless
    np.testing.assert_array_equal(_read(files), expected)
    np.testing.assert_allclose(expected[2], stored[2] * SLOPES[2] * WEIGHT * 1000 / DOSE, rtol=1e-6)


def _injection_time_only() -> dict:
    rp = {k: v for k, v in RP.items() if k != "RadiopharmaceuticalStartDateTime"}
    return {**rp, "RadiopharmaceuticalStartTime": "085500"}


_GE_PRIVATE = [(0x00090010, "LO", "GEMS_PETD_01"), (0x0009100D, "DT", "20240506095800")]
_NIGHT_BEDS = [{"AcquisitionTime": t, "FrameReferenceTime": _frt(o)}
               for t, o in (("004500", 0), ("004800", 180), ("005100", 360))]  # fmt: skip
_GE_BEDS = [{"AcquisitionTime": t, "FrameReferenceTime": _frt(o, t_ave=False)}
            for t, o in (("100000", 0), ("100300", 180), ("100600", 360))]  # fmt: skip
#: Every series above that lion converts with DecayCorrection START (or CNTS, GML BW), built
#: as in its test: lion's SUV must equal cornerstone's calculate-suv unless DIFFERS says why.
VENDOR_CASES = {
    "siemens_multibed": lambda d: _series(d, SIEMENS_BEDS),
    "post_processed_first_bed_cropped": lambda d: _series(
        d, SIEMENS_BEDS[1:] + SIEMENS_BEDS[1:2], SeriesTime="143000"
    ),
    "siemens_private_scan_start": lambda d: _series(
        d,
        SIEMENS_BEDS,
        SeriesTime="143000",
        private=[(0x00710010, "LO", "SIEMENS MED PT"), (0x00711022, "DT", "20240506095900")],
    ),
    "ge_acquisition_minus_frt": lambda d: _series(
        d, _GE_BEDS, SeriesTime="143000", Manufacturer="GE MEDICAL SYSTEMS"
    ),
    "unknown_vendor_post_processed": lambda d: _series(
        d, SIEMENS_BEDS, SeriesTime="143000", Manufacturer="ACME PET"
    ),
    "reconstructed_a_week_later": lambda d: _series(
        d, SIEMENS_BEDS, rp=_injection_time_only(), SeriesDate="20240513", SeriesTime="143000"
    ),
    "ge_private_scan_start": lambda d: _series(
        d,
        SIEMENS_BEDS,
        SeriesTime="143000",
        private=_GE_PRIVATE,
        Manufacturer="GE MEDICAL SYSTEMS",
    ),
    "injection_before_midnight": lambda d: _series(
        d,
        _NIGHT_BEDS,
        rp={**_injection_time_only(), "RadiopharmaceuticalStartTime": "234000"},
        SeriesDate="20240507",
        SeriesTime="004500",
        AcquisitionDate="20240507",
    ),
    "admin": lambda d: _series(d, SIEMENS_BEDS, DecayCorrection="ADMIN"),
    "philips_cnts_suv_factor": lambda d: _philips(d, "0.000412", "2.5"),
    "philips_cnts_activity_factor": lambda d: _philips(d, "0", "2.5"),
    "philips_suv_factor_no_creator": lambda d: _series(
        d,
        PHILIPS_BEDS,
        Manufacturer="Philips",
        Units="CNTS",
        private=[(0x70531000, "DS", "0.000412")],
    ),
    "philips_activity_factor_no_creator": lambda d: _series(
        d,
        PHILIPS_BEDS,
        Manufacturer="Philips",
        Units="CNTS",
        private=[(0x70531009, "DS", "2.5")],
    ),
    "gml_body_weight": lambda d: pet_series(
        d,
        [s // 100 for s in _stored()],
        SLOPES,
        Z_MM,
        Units="GML",
        SUVType="BW",
        DecayCorrection="START",
        SeriesDate="20240506",
        SeriesTime="100000",
        AcquisitionDate="20240506",
        AcquisitionTime="100000",
        PatientWeight="78",
        rp=RP,
    ),
    "philips_static_bed_series_before_acquisition": _philips_static_bed,
    "post_processed_frame_reference_time_zero": _post_processed_frt_zero,
}
#: Where calculate-suv 1.1.0 answers differently by design (its source, tests/cornerstone_suv.py).
DIFFERS = {
    "post_processed_first_bed_cropped": "QIBA's frame rule (acquisition - FRT + T_ave: 10:00) is "
    "commented out in calculate-suv, which takes the earliest acquisition left (10:03)",
    "siemens_private_scan_start": "calculate-suv knows no Siemens (0071,1022); it takes the "
    "earliest acquisition (10:00) for the private 09:59",
    "reconstructed_a_week_later": "calculate-suv puts an injection time without date on the "
    "SeriesDate (a week after the scan) and throws 'Decay time cannot be less than zero'",
    "injection_before_midnight": "calculate-suv puts the 23:40 injection on the scan's date, "
    "after the 00:45 scan, and throws (its 'TODO: spanning midnight')",
    "admin": "calculate-suv does not read DecayCorrection and decays an ADMIN series' dose",
}


@pytest.mark.parametrize("case", sorted(VENDOR_CASES))
def test_vendor_case_equals_cornerstone_calculate_suv(tmp_path, case):
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    files = VENDOR_CASES[case](tmp_path / case)
    ours = _read(files)
    try:
        theirs = cornerstone_suv(files)
    except CornerstoneError as e:
        assert case in DIFFERS, f"calculate-suv threw for {case}: {e}"
        return
    if case in DIFFERS:  # the listed difference is real (the list cannot go stale)
        assert not np.allclose(ours, theirs, rtol=1e-3), (case, DIFFERS[case])
    else:
        np.testing.assert_allclose(ours, theirs, rtol=1e-3)  # 0.1 %
