"""Bad input to the converters: one clear sentence, exit 1, nothing half-written."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.labels import FDG


def _img(
    arr: np.ndarray, spacing=(4.0, 4.0, 4.0), origin=(0.0, 0.0, 0.0), direction=None
) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def _case(root: Path, cid: str, **kw) -> str:
    """Write a valid tiny case (PET, tumor, one organ mask folder); kw overrides pieces."""
    d = root / cid
    (d / "organs").mkdir(parents=True)
    pet = np.full((16, 12, 12), 1.0, np.float32)
    pet[8, 6, 6] = 9.0
    pet = kw.get("pet", pet)
    tumor = kw.get("tumor", (pet > 5).astype(np.uint8))
    sitk.WriteImage(_img(pet), str(d / "pet.nii.gz"))
    sitk.WriteImage(kw.get("tumor_img", _img(tumor)), str(d / "tumor.nii.gz"))
    liver = np.zeros((16, 12, 12), np.uint8)
    liver[2:6, 2:6, 2:6] = 1
    origin = kw.get("organ_origin", (0.0, 0.0, 0.0))
    # TotalSegmentator writes every class of the task: the others are empty masks
    for name in TOTAL_CLASSES:
        mask = liver if name == "liver" else np.zeros_like(liver)
        sitk.WriteImage(_img(mask, origin=origin), str(d / f"organs/{name}.nii.gz"))
    return f"{cid},{cid}/pet.nii.gz,{cid}/tumor.nii.gz,{cid}/organs"


#: The FDG label set's classes of TotalSegmentator's 'total' task (all its task needs).
TOTAL_CLASSES = sorted({s.name for o in FDG.organs for s in o.sources})


FLIP_X = (-1, 0, 0, 0, 1, 0, 0, 0, 1)
_NAN_PET = np.full((16, 12, 12), 1.0, np.float32)
_NAN_PET[3:5, 3:5, 3:5] = np.nan


def _run(tmp_path: Path, rows: list[str], *extra: str) -> int:
    manifest = tmp_path / "m.csv"
    manifest.write_text("case_id,pet,tumor,organs\n" + "\n".join(rows) + "\n")
    return main(["convert", "manifest", "--input", str(manifest), "--tracer", "fdg", "--dataset-id",
                 "521", "--name", "Bad", "-np", "1", "--no-pbar", *extra])  # fmt: skip


def _dataset(tmp_path: Path) -> Path:
    return Path(os.environ["nnUNet_raw"]) / "Dataset521_Bad"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"tumor_img": _img(np.zeros((16, 12, 11), np.uint8))}, "size (11, 12, 16) differs"),
        ({"tumor_img": _img(np.zeros((16, 12, 12), np.uint8), spacing=(4, 4, 5))}, "spacing"),
        ({"tumor_img": _img(np.zeros((16, 12, 12), np.uint8), origin=(9, 0, 0))}, "origin"),
        (
            {
                "tumor_img": _img(
                    np.zeros((16, 12, 12), np.uint8), direction=(-1, 0, 0, 0, 1, 0, 0, 0, 1)
                )
            },
            "direction",
        ),
    ],
)
def test_tumor_mask_off_the_pet_grid(tmp_path, nnunet_dirs, capsys, override, message) -> None:
    assert _run(tmp_path, [_case(tmp_path, "c1", **override)]) == 1
    err = capsys.readouterr().err
    assert "c1/tumor.nii.gz" in err and message in err and "nothing was written" in err
    assert not _dataset(tmp_path).exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"pet": _NAN_PET}, "8 NaN/inf voxels"),
        ({"pet": np.zeros((16, 12, 12), np.float32)}, "PET is empty"),
        ({"pet": np.full((16, 12, 12), 20000.0, np.float32)}, "implausible for SUV"),
        ({"tumor": np.full((16, 12, 12), 0.5, np.float32)}, "non-integer values"),
        ({"organ_origin": (5000.0, 0.0, 0.0)}, "does not overlap the PET"),
    ],
)
def test_bad_data_fails_listing_the_case(tmp_path, nnunet_dirs, capsys, override, message) -> None:
    good = _case(tmp_path, "good")
    assert _run(tmp_path, [good, _case(tmp_path, "bad", **override)]) == 1
    err = capsys.readouterr().err
    assert message in err and "1 of 2 case(s) failed" in err
    ds = _dataset(tmp_path)
    assert (ds / "imagesTr/good_0000.nii.gz").is_file()  # finished cases stay ...
    assert not (ds / "imagesTr/bad_0000.nii.gz").exists()  # ... and nothing half-written
    assert not list(ds.rglob("*.part*"))


def test_negative_suv_is_clipped_with_a_warning(tmp_path, nnunet_dirs, caplog) -> None:
    pet = np.full((16, 12, 12), 1.0, np.float32)
    pet[8, 6, 6], pet[0, 0, 0] = 9.0, -0.4
    assert _run(tmp_path, [_case(tmp_path, "neg", pet=pet)]) == 0
    assert "negative SUV voxels" in caplog.text
    out = sitk.GetArrayFromImage(
        sitk.ReadImage(str(_dataset(tmp_path) / "imagesTr/neg_0000.nii.gz"))
    )
    assert out.min() == 0.0


def test_multivalued_tumor_mask_becomes_tumor_label(tmp_path, nnunet_dirs) -> None:
    tumor = np.zeros((16, 12, 12), np.uint8)
    tumor[1:3, 1:3, 1:3], tumor[10:12, 8:10, 8:10] = 1, 7  # instance-labelled lesions
    assert _run(tmp_path, [_case(tmp_path, "multi", tumor=tumor)]) == 0
    label = sitk.GetArrayFromImage(
        sitk.ReadImage(str(_dataset(tmp_path) / "labelsTr/multi.nii.gz"))
    )
    assert (label == 1).sum() == 16 and 7 not in label


def test_cohort_problems_are_reported_together(tmp_path, nnunet_dirs, capsys) -> None:
    rows = [_case(tmp_path, "a"), _case(tmp_path, "b"), "a,a/pet.nii.gz,a/tumor.nii.gz,a/organs",
            "c,c/missing.nii.gz,a/tumor.nii.gz,a/organs"]  # fmt: skip
    corrupt = tmp_path / "b" / "tumor.nii.gz"
    corrupt.write_bytes(gzip.compress(b"not a nifti at all"))
    assert _run(tmp_path, rows) == 1
    err = capsys.readouterr().err
    assert "3 problem(s)" in err
    assert "case id 'a' occurs 2 times" in err
    assert "c/missing.nii.gz: PET file not found" in err
    assert "b/tumor.nii.gz: the tumor mask file has no valid NIfTI header" in err
    assert not _dataset(tmp_path).exists()


def test_missing_file_in_a_study_folder(tmp_path, nnunet_dirs, capsys) -> None:
    study = tmp_path / "studies" / "PAT1" / "2020"
    study.mkdir(parents=True)
    sitk.WriteImage(_img(np.ones((4, 4, 4), np.float32)), str(study / "SUV.nii.gz"))
    code = main(["convert", "autopet", "--input", str(tmp_path / "studies"), "--tracer", "fdg",
                 "--no-organs", "--dataset-id", "522", "--name", "X", "--no-pbar"])  # fmt: skip
    assert code == 1
    err = capsys.readouterr().err
    assert "1 of 1 studies have SUV.nii.gz but no SEG.nii.gz (PAT1/2020)" in err


def test_existing_dataset_with_other_content_needs_overwrite(tmp_path, nnunet_dirs, capsys) -> None:
    ds = _dataset(tmp_path)
    ds.mkdir(parents=True)
    (ds / "dataset.json").write_text('{"labels": {"background": 0, "liver": 1}}')
    assert _run(tmp_path, [_case(tmp_path, "c1")]) == 1
    assert "exists with other content" in capsys.readouterr().err
    assert _run(tmp_path, [_case(tmp_path, "c2")], "--overwrite") == 0
    assert (ds / "imagesTr/c2_0000.nii.gz").is_file()
    other = Path(os.environ["nnUNet_raw"]) / "Dataset521_Other"
    other.mkdir()
    assert _run(tmp_path, [_case(tmp_path, "c3")]) == 1
    assert "already used by another dataset name" in capsys.readouterr().err


def test_manifest_errors(tmp_path, nnunet_dirs, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("case_id,pet\nx,y\n")
    args = ["convert", "manifest", "--input", str(bad), "--tracer", "fdg", "--dataset-id", "523"]
    assert main([*args, "--name", "M"]) == 1
    assert "lacks column(s) tumor, organs" in capsys.readouterr().err


def test_missing_totalsegmentator_task_fails_that_case_only(
    psma_cohort: Path, tmp_path: Path, nnunet_dirs, capsys
) -> None:
    """A PSMA case without head_glands_cavities: exit 1 naming the task and the command; the
    other cases are converted (TotalSegmentator writes every class of a task, so a missing file
    means the task never ran)."""
    import shutil

    organs = tmp_path / "organs"
    shutil.copytree(psma_cohort / "organs", organs)
    broken = organs / "SYNPSMA_0002" / "study_01"
    (broken / "head_glands_cavities.nii.gz").unlink()
    assert main(["convert", "autopet", "--input", str(psma_cohort / "studies"), "--organs",
                 str(organs), "--tracer", "psma", "--dataset-id", "523", "--name", "NoGlands",
                 "-np", "1", "--no-pbar"]) == 1  # fmt: skip
    err = capsys.readouterr().err
    assert "1 of 8 case(s) failed" in err
    assert f"{broken}: no output of TotalSegmentator task 'head_glands_cavities'" in err
    assert f"TotalSegmentator -i CT.nii.gz -o {broken}/head_glands_cavities.nii.gz --ml" in err
    folder = Path(nnunet_dirs["nnUNet_raw"]) / "Dataset523_NoGlands"
    assert len(list((folder / "labelsTr").glob("*.nii.gz"))) == 7
    assert not (folder / "labelsTr" / "SYNPSMA_0002.nii.gz").exists()


def test_missing_class_file_is_an_error_and_an_empty_mask_is_fine(tmp_path, nnunet_dirs, capsys):
    rows = [_case(tmp_path, "a"), _case(tmp_path, "b")]
    empty = tmp_path / "a" / "organs" / "brain.nii.gz"  # brain outside the field of view: empty
    assert not sitk.GetArrayFromImage(sitk.ReadImage(str(empty))).any()
    (tmp_path / "b" / "organs" / "spleen.nii.gz").unlink()  # --roi_subset-like partial output
    assert _run(tmp_path, rows) == 1
    err = capsys.readouterr().err
    assert "1 of 2 case(s) failed" in err
    assert "b/organs: spleen.nii.gz missing from the output of TotalSegmentator task 'total'" in err
    assert (_dataset(tmp_path) / "labelsTr" / "a.nii.gz").is_file()
