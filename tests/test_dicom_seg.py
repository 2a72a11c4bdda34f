"""DICOM-SEG: highdicom write, read back equal to the NIfTI mask; lion predict --dicom-seg."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from fixtures_nnunet import SMALL_RANDOM_NET

from lion_nnunet.cli import main
from lion_nnunet.inference.dicom_seg import read_dicom_seg, write_dicom_seg
from lion_nnunet.inference.model import make_random_model
from lion_nnunet.synthetic.dicom_writer import write_pet_series


def _pet(shape_zyx=(6, 8, 10)) -> sitk.Image:
    image = sitk.GetImageFromArray(
        np.random.default_rng(0).uniform(0, 8, shape_zyx).astype(np.float32)
    )
    image.SetSpacing((4.0, 4.0, 3.0))
    image.SetOrigin((0.0, 0.0, -50.0))
    return image


def test_seg_roundtrip_references_the_pet(tmp_path: Path) -> None:
    files = write_pet_series(_pet(), tmp_path / "pet")
    tumor = np.zeros((6, 8, 10), np.uint8)
    tumor[2:4, 3:6, 4:8] = 1
    tumor[5, 0, 0] = 1
    path = write_dicom_seg(tumor, files[::-1], tmp_path / "seg.dcm")  # any file order
    np.testing.assert_array_equal(read_dicom_seg(path, files), tumor)
    ds = pydicom.dcmread(path)
    pet = pydicom.dcmread(files[0])
    assert ds.Modality == "SEG" and ds.StudyInstanceUID == pet.StudyInstanceUID
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == pet.SeriesInstanceUID
    referenced = {i.ReferencedSOPInstanceUID for i in ds.ReferencedSeriesSequence[0]
                  .ReferencedInstanceSequence}  # fmt: skip
    assert referenced <= {pydicom.dcmread(f).SOPInstanceUID for f in files}
    with pytest.raises(Exception, match="does not match the PET series"):
        write_dicom_seg(tumor[:3], files, tmp_path / "bad.dcm")


def test_predict_dicom_root_with_dicom_seg(tmp_path: Path, fdg_cohort: Path) -> None:
    suv = sitk.ReadImage(str(next((fdg_cohort / "studies").rglob("SUV.nii.gz"))))
    files = write_pet_series(suv, tmp_path / "dicom" / "pt", patient_id="PAT7")
    model = make_random_model(
        tmp_path / "Dataset992_R" / "nnUNetTrainer__LIONPlans__3d_fullres", "fdg",
        patch_size=(96, 48, 48), spacing=(6.0, 6.0, 6.0), **SMALL_RANDOM_NET,
    )  # fmt: skip
    out = tmp_path / "out"
    assert main(["predict", "-i", str(tmp_path / "dicom"), "-o", str(out), "-m", str(model),
                 "-f", "0", "--device", "cpu", "--disable-tta", "--no-pbar",
                 "--dicom-seg"]) == 0  # fmt: skip
    case = out / "PAT7"  # the case id lion convert dicom + lion convert autopet give
    report = json.loads((case / "report.json").read_text())
    assert report["dicom_seg"] == "seg.dcm"
    tumor = sitk.GetArrayFromImage(sitk.ReadImage(str(case / "tumor.nii.gz")))
    np.testing.assert_array_equal(read_dicom_seg(case / "seg.dcm", files), tumor)
    # the PET the model saw is the SUV of the DICOM series, on the DICOM grid
    assert sitk.ReadImage(str(case / "tumor.nii.gz")).GetSpacing() == pytest.approx(
        suv.GetSpacing()
    )


def test_a_correction_of_a_dicom_case_writes_seg_corrected(tmp_path: Path, caplog) -> None:
    """A corrected case with seg.dcm gets seg_corrected.dcm (the corrected mask, on the same PET
    series, SEMIAUTOMATIC); seg.dcm stays; without the series folder, no stale SEG is left."""
    import gzip
    import shutil

    from lion_nnunet.inference.outputs import write_case_outputs
    from lion_nnunet.inference.suv import read_suv_series
    from lion_nnunet.labels import get_label_set
    from lion_nnunet.review.corrections import CorrectionStore

    series = tmp_path / "dicom" / "pt"
    files = write_pet_series(_pet((8, 10, 12)), series, patient_id="PAT9")
    image = read_suv_series(files)
    suv = sitk.GetArrayFromImage(image)
    predicted = np.zeros(suv.shape, np.uint8)
    predicted[2:4, 3:6, 4:8] = 1
    corrected = predicted.copy()
    corrected[6, 1:3, 1:3] = 1  # a lesion the model missed, added by the reader
    corrected[2, 3, 4] = 0

    def seg(case_dir: Path) -> dict:
        return {"dicom_seg": write_dicom_seg(predicted, files, case_dir / "seg.dcm").name}

    pred = tmp_path / "pred"
    write_case_outputs(pred / "PAT9", "PAT9", image, suv, predicted, None, get_label_set("fdg"),
                       extra={"input": str(series)}, more_outputs=seg, save_suv=True)  # fmt: skip
    before = (pred / "PAT9" / "seg.dcm").read_bytes()
    store = CorrectionStore(pred, None)
    body = gzip.compress(corrected.tobytes())
    assert "seg_corrected.dcm" in store.save_mask("PAT9", body, "application/gzip")["files"]
    case = pred / "PAT9"
    np.testing.assert_array_equal(read_dicom_seg(case / "seg_corrected.dcm", files), corrected)
    np.testing.assert_array_equal(read_dicom_seg(case / "seg.dcm", files), predicted)
    assert (case / "seg.dcm").read_bytes() == before
    ds, pet = pydicom.dcmread(case / "seg_corrected.dcm"), pydicom.dcmread(files[0])
    assert ds.ReferencedSeriesSequence[0].SeriesInstanceUID == pet.SeriesInstanceUID
    assert ds.SegmentSequence[0].SegmentAlgorithmType == "SEMIAUTOMATIC"
    assert "corrected" in ds.SeriesDescription
    assert json.loads((case / "corrections.json").read_text())["dicom_seg"] == "seg_corrected.dcm"
    # the series folder moved away: the next correction writes no SEG and leaves no stale one
    shutil.move(series, tmp_path / "moved")
    assert "seg_corrected.dcm" not in store.save_mask("PAT9", body, "application/gzip")["files"]
    assert not (case / "seg_corrected.dcm").exists()
    record = json.loads((case / "corrections.json").read_text())
    assert "no longer there" in record["dicom_seg_error"]
