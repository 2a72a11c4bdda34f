"""lion convert dicom: a mixed DICOM tree -> autoPET study folders, checked against references.

SUV against QIBA's formula by hand, CTres against a linear HU ramp (exact under linear
interpolation) and SimpleITK's own series reader + resampling, the RTSTRUCT mask against a
brute-force point-in-polygon test of every voxel centre (matplotlib.path), the DICOM-SEG mask
against the box it was made from; then `lion convert autopet` reads the output unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from fixtures_dicom import ct_series, pet_series, rtstruct
from matplotlib.path import Path as Polygon

from lion_nnunet.cli import main
from lion_nnunet.inference.cases import find_pet_series

RP = {"RadiopharmaceuticalStartDateTime": "20240506085500", "RadionuclideTotalDose": "3.5e8",
      "RadionuclideHalfLife": "6586.2", "Radiopharmaceutical": "Fluorodeoxyglucose"}  # fmt: skip
PET_TAGS = {"Units": "BQML", "DecayCorrection": "START", "PatientWeight": "78",
            "SeriesDate": "20240506", "SeriesTime": "100000", "AcquisitionDate": "20240506",
            "ActualFrameDuration": 180000, "Manufacturer": "SIEMENS", "SliceThickness": "3",
            "SeriesDescription": "PET WB AC"}  # fmt: skip
LAM_T = math.log(2) / 6586.2 * 180.0  # F-18, 180 s beds
T_AVE = math.log(LAM_T / (1 - math.exp(-LAM_T))) / (math.log(2) / 6586.2)  # average-activity time
BEDS = [
    {"AcquisitionTime": t, "FrameReferenceTime": f"{(o + T_AVE) * 1000:.3f}"}
    for t, o in (("100000", 0), ("100300", 180), ("100600", 360))
]  # FRT from series start
PER_SLICE = [BEDS[k // 2] for k in range(6)]  # two slices per bed position
Z_MM = [0.0, 3.0, 6.0, 9.0, 12.0, 15.0]
SLOPES = [0.021, 0.022, 0.019, 0.018, 0.023, 0.02]
OUTER = np.array([(-3.1, -1.3), (21.7, -2.9), (27.3, 13.1), (9.9, 22.7), (-5.3, 12.2)])
HOLE = np.array([(5.2, 3.3), (15.1, 4.4), (9.7, 13.6)])
BOX = (slice(1, 4), slice(2, 6), slice(3, 8))  # (z, y, x) of the DICOM-SEG tumor segment


def _stored(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 20000, (10, 12)).astype(np.uint16) for _ in Z_MM]


def _contour(xy: np.ndarray, z: float) -> np.ndarray:
    return np.column_stack([xy, np.full(len(xy), z)])


def _write_seg(pet_files: list[Path], path: Path) -> None:
    import highdicom as hd
    from pydicom.sr.codedict import codes

    sources = sorted(
        (pydicom.dcmread(f) for f in pet_files), key=lambda d: d.ImagePositionPatient[2]
    )
    mask = np.zeros((len(sources), 10, 12, 2), np.uint8)
    mask[(*BOX, 0)] = 1
    mask[4:6, 6:9, 1:4, 1] = 1
    segments = [
        hd.seg.SegmentDescription(
            segment_number=n,
            segment_label=label,
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Neoplasm,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for n, label in ((1, "Tumor"), (2, "Kidney left"))
    ]
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=segments,
        series_instance_uid=hd.UID(), series_number=50, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="reader", manufacturer_model_name="hand",
        software_versions="1", device_serial_number="1",
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(path)


@pytest.fixture(scope="module")
def dicom_tree(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("pacs")
    study1, study2 = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    frame = pydicom.uid.generate_uid()
    # study 1: PET + CT + a NAC PET in one flat folder (files recognised by content), RTSTRUCT
    flat = root / "export" / "PETCT_0a1"
    pet1 = pet_series(flat, _stored(1), SLOPES, Z_MM, PER_SLICE, patient="PETCT_0a1",
                      study_uid=study1, frame_of_reference=frame, rp=RP, **PET_TAGS)  # fmt: skip
    nac = pet_series(root / "export" / "nac", _stored(2), SLOPES, Z_MM, PER_SLICE,
                     patient="PETCT_0a1", study_uid=study1, frame_of_reference=frame, rp=RP,
                     **{**PET_TAGS, "CorrectedImage": ["NORM", "DECY"]})  # fmt: skip
    for f in nac:  # same folder as the AC series, other names
        f.rename(flat / f"NAC_{f.name}")
    z, y, x = np.meshgrid(range(8), range(21), range(22), indexing="ij")
    hu = 2.0 * (-12.0 + 2.0 * x) - 100.0 + 0 * y + 0 * z  # HU ramp along x (mm)
    ct = ct_series(flat, hu, (2.0, 2.0, 2.0), (-12.0, -10.0, -1.0), "PETCT_0a1", study1, frame)
    rtstruct(root / "export" / "rt" / "RS1.dcm", pet1, {
        "GTV lesion": [_contour(OUTER, 6.0), _contour(OUTER, 9.0), _contour(HOLE, 9.0)],
        "Liver": [_contour(HOLE, 0.0)],
    })  # fmt: skip
    (root / "export" / "readme.txt").write_text("not DICOM")
    # study 2 of the same patient: PET only, DICOM-SEG
    pet2 = pet_series(root / "other" / "s2", _stored(3), SLOPES, Z_MM, PER_SLICE,
                      patient="PETCT_0a1", study_uid=study2, rp=RP,
                      **{**PET_TAGS, "StudyDate": "20250101"})  # fmt: skip
    _write_seg(pet2, root / "other" / "seg" / "SEG.dcm")
    # patient 2: dose written in MBq -> refused, the others still converted
    bad = pet_series(root / "P2" / "pet", _stored(4), SLOPES, Z_MM, PER_SLICE, patient="P2",
                     rp={**RP, "RadionuclideTotalDose": "350"}, **PET_TAGS)  # fmt: skip
    return {"root": root, "pet1": pet1, "ct": ct, "bad": bad}


def _one(folder: Path, pattern: str) -> Path:
    found = sorted(folder.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def test_convert_dicom_tree(dicom_tree: dict, tmp_path: Path, capsys, nnunet_dirs) -> None:
    out = tmp_path / "studies"
    code = main(["convert", "dicom", "--input", str(dicom_tree["root"]), "--output", str(out),
                 "-np", "1", "--no-pbar"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1  # one series refused ...
    assert f"refused {dicom_tree['root'] / 'P2' / 'pet'}:" in err and "looks like MBq" in err
    s1 = _one(out / "PETCT_0a1", "2024-05-06-PET-CT-Ganzkoerper-*")  # ... the others written
    s2 = _one(out / "PETCT_0a1", "2025-01-01-PET-CT-Ganzkoerper-*")
    assert sorted(p.name for p in s1.iterdir()) == ["CTres.nii.gz", "SEG.nii.gz", "SUV.nii.gz",
                                                     "dicom_sources.json"]  # fmt: skip
    assert sorted(p.name for p in s2.iterdir()) == ["SEG.nii.gz", "SUV.nii.gz",
                                                     "dicom_sources.json"]  # fmt: skip
    assert not (out / "P2").exists()

    # SUV: QIBA by hand (65 min from injection to the series start, all beds)
    suv_image = sitk.ReadImage(str(s1 / "SUV.nii.gz"))
    assert suv_image.GetPixelID() == sitk.sitkFloat32
    decayed = 3.5e8 * 2 ** (-(65 * 60) / 6586.2)
    stored4 = _stored(1)[4].astype(np.float64) * SLOPES[4]
    np.testing.assert_allclose(sitk.GetArrayFromImage(suv_image)[4], stored4 * 78000 / decayed,
                               rtol=1e-5)  # fmt: skip

    # CTres: the HU ramp 2 x - 100 at each PET voxel centre; -1024 outside the CT
    ctres = sitk.ReadImage(str(s1 / "CTres.nii.gz"))
    assert ctres.GetSize() == suv_image.GetSize() and ctres.GetOrigin() == suv_image.GetOrigin()
    got = sitk.GetArrayFromImage(ctres)
    x_mm = -10.0 + 4.0 * np.arange(12)
    expected = np.broadcast_to(2.0 * x_mm - 100.0, got.shape).copy()
    expected[:, :, x_mm > 31.0] = -1024.0  # CT centres end at x = 30 mm (edge 31 mm)
    expected[np.array(Z_MM) > 14.0] = -1024.0  # CT slices end at z = 13 mm (edge 14 mm)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    reader = sitk.ImageSeriesReader()  # SimpleITK's own reading (GDCM) and resampling
    reader.SetFileNames([str(f) for f in dicom_tree["ct"]])
    theirs = sitk.Resample(reader.Execute(), suv_image, sitk.Transform(), sitk.sitkLinear, -1024.0,
                           sitk.sitkFloat32)  # fmt: skip
    np.testing.assert_allclose(got, sitk.GetArrayFromImage(theirs), atol=1e-3)

    # SEG from RTSTRUCT: voxel centres inside the outer contour, minus the hole on z = 9 mm
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(s1 / "SEG.nii.gz")))
    xx, yy = np.meshgrid(x_mm, -8.0 + 4.0 * np.arange(10))
    centres = np.column_stack([xx.ravel(), yy.ravel()])
    outer = Polygon(OUTER).contains_points(centres).reshape(10, 12)
    hole = Polygon(HOLE).contains_points(centres).reshape(10, 12)
    brute = np.zeros_like(seg)
    brute[2], brute[3] = outer, outer & ~hole
    assert seg.dtype == np.uint8 and (outer & hole).any() and (seg == brute).all()  # no "Liver"

    # SEG from DICOM-SEG: the "Tumor" box only (the kidney segment is not a tumor)
    seg2 = sitk.GetArrayFromImage(sitk.ReadImage(str(s2 / "SEG.nii.gz")))
    box = np.zeros_like(seg2)
    box[BOX] = 1
    assert (seg2 == box).all()

    # resumable: a second run skips the written studies and leaves them untouched
    stamp = (s1 / "SUV.nii.gz").stat().st_mtime_ns
    assert main(["convert", "dicom", "--input", str(dicom_tree["root"]), "--output", str(out),
                 "-np", "1", "--no-pbar"]) == 1  # fmt: skip
    assert "2 already done, 1 series refused" in capsys.readouterr().out
    assert (s1 / "SUV.nii.gz").stat().st_mtime_ns == stamp

    # the output feeds lion convert autopet unchanged
    args = ["--tracer", "fdg", "--no-organs", "--dataset-id", "971", "--name", "FROMDICOM"]
    assert main(["convert", "autopet", "--input", str(out), *args, "-np", "1", "--no-pbar"]) == 0
    labels = sorted((nnunet_dirs["nnUNet_raw"] / "Dataset971_FROMDICOM" / "labelsTr").glob("*"))
    assert len(labels) == 2
    # lion predict -i DICOM_ROOT names each study as this conversion did
    converted = {p.name.removesuffix(".nii.gz") for p in labels}
    assert converted <= {c.case_id for c in find_pet_series(dicom_tree["root"])}


def test_study_whose_rtstruct_has_no_tumor_roi_is_written_without_seg(
    dicom_tree: dict, tmp_path: Path, capsys, nnunet_dirs
) -> None:
    """An RTSTRUCT none of whose ROIs matches --roi (organs at risk, the IBSI DROs' 'region_1'):
    SUV and CTres written, no SEG.nii.gz, a warning naming the ROIs, the log's note; then
    `lion convert autopet` names the study without SEG instead of failing on a missing file."""
    import json

    import pandas as pd

    out = tmp_path / "o"
    base = ["convert", "dicom", "--input", str(dicom_tree["root"] / "export"), "--output",
            str(out), "-np", "1", "--no-pbar"]  # fmt: skip
    assert main([*base, "--roi", "^prostate$"]) == 0  # nothing refused
    captured = capsys.readouterr()
    assert "no ROI/segment name" in captured.err and "(names: GTV lesion, Liver)" in captured.err
    assert "1 study(ies) written (1 without SEG.nii.gz)" in captured.out
    study = _one(out / "PETCT_0a1", "2024-05-06-*")
    assert sorted(p.name for p in study.iterdir()) == ["CTres.nii.gz", "SUV.nii.gz",
                                                        "dicom_sources.json"]  # fmt: skip
    log = pd.read_csv(out / "dicom_conversion.csv", keep_default_na=False)
    assert len(log) == 1 and log.loc[0, "status"] == "written"
    assert log.loc[0, "note"].startswith("no SEG.nii.gz: no ROI/segment name")
    assert "--roi '^prostate$'" in log.loc[0, "note"]
    sources = json.loads((study / "dicom_sources.json").read_text())
    assert sources["tumor_rois"] == {} and sources["no_seg"] == log.loc[0, "note"]

    args = ["--tracer", "fdg", "--no-organs", "--dataset-id", "972", "--name", "NOSEG", "--no-pbar"]
    assert main(["convert", "autopet", "--input", str(out), *args]) == 1
    err = capsys.readouterr().err
    assert f"1 of 1 studies have SUV.nii.gz but no SEG.nii.gz ({study.relative_to(out)})" in err
    assert "dicom_conversion.csv" in err
    assert not (nnunet_dirs["nnUNet_raw"] / "Dataset972_NOSEG").exists()

    # the default --roi picks "GTV lesion": SEG written, and the cohort converts
    assert main([*base, "--overwrite", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["written"] == 1 and summary["without_seg"] == []
    assert (study / "SEG.nii.gz").is_file()
    assert main(["convert", "autopet", "--input", str(out), *args]) == 0


def test_rtstruct_drawn_on_ct_is_moved_to_the_pet_grid(tmp_path: Path) -> None:
    """A rectangle contoured on CT slices z = 3..9 mm: a known block of PET voxels.

    CT centres: x = -12 + 2i, y = -10 + 2j, z = -1 + 2k mm; the rectangle x in [-3, 15], y in
    [-1, 13] holds the CT centres x -2..14, y 0..12 on slices z 3, 5, 7, 9. PET centres
    (x = -10 + 4i, y = -8 + 4j, z = 0, 3, ...) inside that CT block, where linear interpolation of
    the mask is >= 0.5, are x -2..14 (5), y 0..12 (4), z 3, 6, 9 (3): 60 voxels.
    """
    study, frame = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    pet_series(tmp_path / "in" / "pet", _stored(5), SLOPES, Z_MM, PER_SLICE, patient="P9",
               study_uid=study, frame_of_reference=frame, rp=RP, **PET_TAGS)  # fmt: skip
    hu = np.zeros((8, 21, 22))
    ct = ct_series(tmp_path / "in" / "ct", hu, (2.0, 2.0, 2.0), (-12.0, -10.0, -1.0), "P9",
                   study, frame)  # fmt: skip
    rect = np.array([(-3.0, -1.0), (15.0, -1.0), (15.0, 13.0), (-3.0, 13.0)])
    rtstruct(tmp_path / "in" / "rs.dcm", ct,
             {"Tumor": [_contour(rect, z) for z in (3.0, 5.0, 7.0, 9.0)]})  # fmt: skip
    out = tmp_path / "out"
    assert main(["convert", "dicom", "--input", str(tmp_path / "in"), "--output", str(out),
                 "-np", "1", "--no-pbar"]) == 0  # fmt: skip
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(_one(out / "P9", "*") / "SEG.nii.gz")))
    expected = np.zeros_like(seg)
    expected[1:4, 2:6, 2:7] = 1  # z 3, 6, 9 mm; y 0..12 mm; x -2..14 mm
    assert seg.sum() == 60 and (seg == expected).all()
    # without its series reference (some exporters omit it) the contours' planes pick the CT grid
    rs = pydicom.dcmread(tmp_path / "in" / "rs.dcm")
    del rs.ReferencedFrameOfReferenceSequence
    rs.save_as(tmp_path / "in" / "rs.dcm")
    assert main(["convert", "dicom", "--input", str(tmp_path / "in"), "--output", str(out),
                 "-np", "1", "--no-pbar", "--overwrite"]) == 0  # fmt: skip
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(_one(out / "P9", "*") / "SEG.nii.gz")))
    assert (seg == expected).all()
