"""SUV from PET DICOM series built with pydicom, against hand-computed SUV; refusals."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from lion_nnunet.errors import LionError
from lion_nnunet.inference.cases import find_pet_series
from lion_nnunet.inference.suv import read_suv_series, suv_scale
from lion_nnunet.synthetic.dicom_writer import write_pet_series


def _suv_image(shape_zyx=(5, 6, 7)) -> sitk.Image:
    rng = np.random.default_rng(1)
    image = sitk.GetImageFromArray(rng.uniform(0.0, 12.0, shape_zyx).astype(np.float32))
    image.SetSpacing((4.0, 4.0, 3.0))
    image.SetOrigin((-12.0, -10.0, 100.0))
    return image


def _stored_bqml(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


@pytest.mark.parametrize("correction", ["START", "ADMIN", "NONE"])
def test_bqml_suv_matches_hand_computation(tmp_path: Path, correction: str) -> None:
    image = _suv_image()
    files = write_pet_series(image, tmp_path / correction, weight_kg=80.0, dose_bq=3.5e8,
                             minutes_after_injection=75.0, decay_correction=correction)  # fmt: skip
    suv = read_suv_series(files)
    # hand computation from the stored values of slice 3: SUV = Bq/ml * g / decayed dose
    lam = math.log(2) / 6586.2
    seconds = 75 * 60 + (30 if correction == "NONE" else 0)  # slice 3 is acquired 30 s later
    decayed = 3.5e8 if correction == "ADMIN" else 3.5e8 * math.exp(-lam * seconds)
    if correction == "NONE":  # uncorrected frame = mean over its 120 s: decay during the frame
        decayed *= (1 - math.exp(-lam * 120)) / (lam * 120)
    expected = _stored_bqml(files[3]) * 80_000.0 / decayed
    got = sitk.GetArrayFromImage(suv)
    np.testing.assert_allclose(got[3], expected, rtol=1e-5)
    # and it gives back the SUV the series was made from (to the 16-bit storage precision)
    np.testing.assert_allclose(got, sitk.GetArrayFromImage(image), atol=12.0 / 30000 + 1e-4)
    assert suv.GetSpacing() == pytest.approx((4.0, 4.0, 3.0))
    assert suv.GetOrigin() == pytest.approx((-12.0, -10.0, 100.0))


def test_per_slice_rescale_slope_and_slice_order(tmp_path: Path) -> None:
    image = _suv_image()
    files = write_pet_series(image, tmp_path / "s")
    slopes = {float(pydicom.dcmread(f).RescaleSlope) for f in files}
    assert len(slopes) == len(files)  # every slice has its own slope
    for i, f in enumerate(files):  # shuffle the file names: order must come from the positions
        f.rename(f.with_name(f"x{(7 * i) % len(files)}_{i}.dcm"))
    suv = read_suv_series(sorted((tmp_path / "s").glob("*.dcm")))
    np.testing.assert_allclose(sitk.GetArrayFromImage(suv), sitk.GetArrayFromImage(image),
                               atol=12.0 / 30000 + 1e-4)  # fmt: skip


def test_philips_counts_with_suv_scale_factor(tmp_path: Path) -> None:
    image = _suv_image()
    files = write_pet_series(image, tmp_path / "p", units="CNTS", philips_suv_factor=0.00123)
    got = sitk.GetArrayFromImage(read_suv_series(files))
    np.testing.assert_allclose(got[2], _stored_bqml(files[2]) * 0.00123, rtol=1e-6)
    np.testing.assert_allclose(got, sitk.GetArrayFromImage(image), atol=1e-3)


def test_refusals(tmp_path: Path) -> None:
    image = _suv_image((3, 4, 4))
    files = write_pet_series(image, tmp_path / "ok")
    ds = pydicom.dcmread(files[0])
    del ds.PatientWeight
    with pytest.raises(LionError, match="PatientWeight is missing"):
        suv_scale(ds, files[0], None)
    ds = pydicom.dcmread(files[0])
    del ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose
    with pytest.raises(LionError, match="RadionuclideTotalDose is missing"):
        suv_scale(ds, files[0], None)
    ds = pydicom.dcmread(files[0])
    ds.Units = "CNTS"
    with pytest.raises(LionError, match="Philips SUV scale factor"):
        suv_scale(ds, files[0], None)
    ct = write_pet_series(image, tmp_path / "ct", modality="CT")
    with pytest.raises(LionError, match="no PET"):
        find_pet_series(tmp_path / "ct")
    with pytest.raises(LionError, match="not PT"):
        read_suv_series(ct)
    for f in files:
        d = pydicom.dcmread(f)
        d.NumberOfTimeSlices = 4
        d.SeriesType = ["DYNAMIC", "IMAGE"]
        d.save_as(f)
    with pytest.raises(LionError, match="dynamic/gated PET"):
        read_suv_series(files)


def test_find_pet_series_skips_other_files(tmp_path: Path) -> None:
    image = _suv_image((3, 4, 4))
    write_pet_series(image, tmp_path / "root" / "pet", patient_id="P1")
    write_pet_series(image, tmp_path / "root" / "ct", modality="CT")
    (tmp_path / "root" / "notes.txt").write_text("not dicom")
    cases = find_pet_series(tmp_path / "root")
    assert [c.case_id for c in cases] == ["P1"] and len(cases[0].dicom_files) == 3
    np.testing.assert_allclose(sitk.GetArrayFromImage(cases[0].loader()),
                               sitk.GetArrayFromImage(image), atol=1e-3)  # fmt: skip


def test_find_pet_series_skips_a_dynamic_series_and_keeps_the_others(tmp_path: Path, caplog):
    image = _suv_image((3, 4, 4))
    write_pet_series(image, tmp_path / "root" / "static", patient_id="P1")
    dynamic = write_pet_series(image, tmp_path / "root" / "dynamic", patient_id="P2")
    for f in dynamic:  # a dynamic acquisition, as the scanner tags it (DICOM PS3.3 C.8.9.1)
        d = pydicom.dcmread(f)
        d.NumberOfTimeSlices, d.SeriesType = 4, ["DYNAMIC", "IMAGE"]
        d.save_as(f)
    cases = find_pet_series(tmp_path / "root")
    assert [c.case_id for c in cases] == ["P1"]
    assert "dynamic/gated PET" in caplog.text and "dynamic" in caplog.text
    with pytest.raises(LionError, match="dynamic/gated PET"):  # nothing left: one clear error
        find_pet_series(tmp_path / "root" / "dynamic")
