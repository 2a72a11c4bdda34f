"""Synthetic cohorts: layout, grids, SUV sanity, bookkeeping, determinism, disease placement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.dataset_conversion.phantoms import make_cohort
from lion_nnunet.errors import LionError
from lion_nnunet.labels import get_label_set


def _arr(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_layout_grids_and_suv(fdg_cohort: Path) -> None:
    cases = pd.read_csv(fdg_cohort / "cases.csv")
    assert len(cases) == 10
    assert set(cases.columns) >= {
        "patient_id", "study", "study_dir", "organs_dir", "tracer", "disease", "center",
        "scanner", "n_lesions", "tumor_volume_ml", "n_lesions_near_organs",
    }  # fmt: skip
    row = cases.iloc[0]
    study = fdg_cohort / "studies" / row.study_dir
    pet = sitk.ReadImage(str(study / "SUV.nii.gz"))
    seg = sitk.ReadImage(str(study / "SEG.nii.gz"))
    ct = sitk.ReadImage(str(study / "CTres.nii.gz"))
    for img in (seg, ct):
        assert img.GetSize() == pet.GetSize()
        assert img.GetSpacing() == pet.GetSpacing()
        assert img.GetOrigin() == pet.GetOrigin()
    suv = sitk.GetArrayFromImage(pet)
    assert pet.GetPixelID() == sitk.sitkFloat32
    assert np.isfinite(suv).all() and suv.min() >= 0 and suv.max() > 5
    assert set(np.unique(sitk.GetArrayFromImage(seg))) <= {0, 1}
    # organs: a different (finer, shifted) grid that still overlaps the PET in physical space
    liver = sitk.ReadImage(str(fdg_cohort / "organs" / row.organs_dir / "liver.nii.gz"))
    assert liver.GetSpacing() != pet.GetSpacing() and liver.GetOrigin() != pet.GetOrigin()
    on_pet = sitk.Resample(liver, pet, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    assert sitk.GetArrayFromImage(on_pet).sum() > 100


def test_every_label_set_class_is_written(fdg_cohort: Path, psma_cohort: Path) -> None:
    folder = fdg_cohort / "organs" / "SYNFDG_0000" / "study_01"
    expected = {s.name for o in get_label_set("fdg").organs for s in o.sources}
    assert {p.name.removesuffix(".nii.gz") for p in folder.iterdir()} == expected
    folder = psma_cohort / "organs" / "SYNPSMA_0000" / "study_01"
    assert {p.name for p in folder.iterdir()} == {"total.nii.gz", "head_glands_cavities.nii.gz"}
    glands = _arr(folder / "head_glands_cavities.nii.gz")
    assert set(np.unique(glands)) == {0, 7, 8, 9, 10}
    assert set(np.unique(_arr(folder / "total.nii.gz"))) == {0, 1, 2, 3, 5, 18, 19, 21}


def test_tumor_volume_bookkeeping_and_negatives(fdg_cohort: Path) -> None:
    cases = pd.read_csv(fdg_cohort / "cases.csv")
    lesions = pd.read_csv(fdg_cohort / "lesions.csv")
    for row in cases.itertuples():
        seg = sitk.ReadImage(str(fdg_cohort / "studies" / row.study_dir / "SEG.nii.gz"))
        ml = sitk.GetArrayFromImage(seg).sum() * np.prod(seg.GetSpacing()) / 1000
        assert ml == pytest.approx(row.tumor_volume_ml, abs=1e-3)
        assert (row.n_lesions == 0) == (row.disease == "negative")
        assert (lesions.patient_id == row.patient_id).sum() == row.n_lesions
    assert (cases.disease == "negative").any()
    assert set(cases.disease) == {"lymphoma", "lung_cancer", "melanoma", "negative"}
    assert lesions.near_organ.notna().any()


def test_deterministic_and_resumable(tmp_path: Path) -> None:
    a = make_cohort(tmp_path / "a", "psma", 3, seed=5, progress=False)
    b = make_cohort(tmp_path / "b", "psma", 3, seed=5, progress=False)
    pd.testing.assert_frame_equal(a, b)
    pet = "studies/SYNPSMA_0002/study_01/SUV.nii.gz"
    np.testing.assert_array_equal(_arr(tmp_path / "a" / pet), _arr(tmp_path / "b" / pet))
    make_cohort(tmp_path / "c", "psma", 3, seed=6, progress=False)
    assert not np.array_equal(_arr(tmp_path / "a" / pet), _arr(tmp_path / "c" / pet))
    # a re-run skips finished cases (files untouched) and rebuilds a missing one
    target = tmp_path / "a" / pet
    mtime = target.stat().st_mtime_ns
    (tmp_path / "a" / ".phantoms" / "SYNPSMA_0000_study_01.json").unlink()
    again = make_cohort(tmp_path / "a", "psma", 3, seed=5, progress=False)
    pd.testing.assert_frame_equal(a, again)
    assert target.stat().st_mtime_ns == mtime
    with pytest.raises(LionError, match="holds a cohort made with"):
        make_cohort(tmp_path / "a", "psma", 3, seed=9, progress=False)


def test_masks_and_ml_formats_describe_the_same_organs(tmp_path: Path) -> None:
    make_cohort(tmp_path / "m", "fdg", 1, seed=2, organ_format="masks", progress=False)
    make_cohort(tmp_path / "l", "fdg", 1, seed=2, organ_format="ml", progress=False)
    ml = _arr(tmp_path / "l/organs/SYNFDG_0000/study_01/total.nii.gz")
    for organ in get_label_set("fdg").organs:
        for src in organ.sources:
            mask = _arr(tmp_path / f"m/organs/SYNFDG_0000/study_01/{src.name}.nii.gz")
            np.testing.assert_array_equal(mask.astype(bool), ml == src.id)


def test_diseases_place_lesions_differently(tmp_path: Path) -> None:
    make_cohort(tmp_path, "fdg", 40, seed=0, progress=False)
    lesions = pd.read_csv(tmp_path / "lesions.csv")
    cases = pd.read_csv(tmp_path / "cases.csv")[["patient_id", "disease"]]
    lesions = lesions.merge(cases, on="patient_id")
    regions = lesions.groupby("disease").region.agg(set)
    assert "subcutaneous" in regions["melanoma"] and "subcutaneous" not in regions["lymphoma"]
    assert "lung" in regions["lung_cancer"] and "lung" not in regions["lymphoma"]


def test_cli_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["phantoms", "--tracer", "fdg", "--cases", "2", "--out", str(tmp_path / "x"),
                 "--no-pbar", "-np", "1"]) == 0  # fmt: skip
    assert "wrote 2 fdg studies" in capsys.readouterr().out
    assert main(["phantoms", "--tracer", "fdg", "--cases", "0", "--out", str(tmp_path / "y")]) == 1
    assert "--cases must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["phantoms", "--tracer", "ct", "--cases", "1", "--out", str(tmp_path)])
    assert exc.value.code == 2
