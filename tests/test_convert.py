"""Converters: stock nnU-Net accepts their datasets; labels land right; bad input is refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from lion_nnunet.cli import main
from lion_nnunet.dataset_conversion.autopet import discover_autopet
from lion_nnunet.dataset_conversion.raw_dataset import convert_cohort
from lion_nnunet.labels import get_label_set
from lion_nnunet.synthetic.phantoms import make_cohort


def _arr(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def _convert(cohort: Path, tracer: str, dataset_id: int, *extra: str) -> Path:
    args = ["convert", "autopet", "--input", str(cohort / "studies"), "--organs",
            str(cohort / "organs"), "--metadata", str(cohort / "cases.csv"), "--tracer", tracer,
            "--dataset-id", str(dataset_id), "--name", f"T{dataset_id}", "-np", "1", "--no-pbar",
            *extra]  # fmt: skip
    assert main(args) == 0
    return next(Path(__import__("os").environ["nnUNet_raw"]).glob(f"Dataset{dataset_id}_*"))


def test_fdg_and_psma_datasets_pass_nnunet_integrity_check(
    fdg_cohort: Path, psma_cohort: Path, nnunet_dirs: dict
) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    for cohort, tracer, did in ((fdg_cohort, "fdg", 511), (psma_cohort, "psma", 512)):
        folder = _convert(cohort, tracer, did, "--test-fraction", "0.2")
        verify_dataset_integrity(str(folder), num_processes=1)
        meta = json.loads((folder / "dataset.json").read_text())
        assert meta["labels"] == get_label_set(tracer).labels()
        assert meta["channel_names"] == {"0": "PET"}
        assert meta["lion"]["tracer"] == tracer and meta["lion"]["with_organs"]
        cases = pd.read_csv(folder / "lion_cases.csv")
        assert (
            meta["numTraining"]
            == (cases.split == "train").sum()
            == len(list((folder / "imagesTr").iterdir()))
        )
        assert (cases.split == "test").sum() == len(list((folder / "labelsTs").iterdir())) >= 1
        assert set(cases.disease) <= {
            "lymphoma",
            "lung_cancer",
            "melanoma",
            "negative",
            "prostate_cancer",
        }
        assert cases.center.str.startswith("center_").all()


def test_labels_tumor_wins_and_organs_in_physical_place(
    fdg_cohort: Path, nnunet_dirs: dict
) -> None:
    folder = _convert(fdg_cohort, "fdg", 513)
    fdg = get_label_set("fdg")
    pet = sitk.ReadImage(str(folder / "imagesTr" / "SYNFDG_0000_0000.nii.gz"))
    label = _arr(folder / "labelsTr" / "SYNFDG_0000.nii.gz")
    seg = _arr(fdg_cohort / "studies/SYNFDG_0000/study_01/SEG.nii.gz")
    np.testing.assert_array_equal(label == 1, seg > 0)  # tumor wins everywhere
    liver_ct = sitk.ReadImage(str(fdg_cohort / "organs/SYNFDG_0000/study_01/liver.nii.gz"))
    liver_pet = sitk.GetArrayFromImage(
        sitk.Resample(liver_ct, pet, sitk.Transform(), sitk.sitkNearestNeighbor)
    )
    expected = (liver_pet > 0) & (seg == 0)
    got = label == fdg.label_of("liver")
    assert (got & expected).sum() / expected.sum() > 0.9  # later organs may overwrite a rim
    for organ in ("kidneys", "small_bowel"):  # left+right / bowel parts merged into one class
        assert (label == fdg.label_of(organ)).sum() > 0
    assert set(np.unique(label)) <= set(range(fdg.num_classes))


def test_ml_and_masks_organ_outputs_give_same_labels(tmp_path: Path, nnunet_dirs: dict) -> None:
    make_cohort(tmp_path / "m", "psma", 2, seed=4, organ_format="masks", progress=False)
    make_cohort(tmp_path / "l", "psma", 2, seed=4, organ_format="ml", progress=False)
    a = _convert(tmp_path / "m", "psma", 514)
    b = _convert(tmp_path / "l", "psma", 515)
    for case in ("SYNPSMA_0000", "SYNPSMA_0001"):
        np.testing.assert_array_equal(
            _arr(a / f"labelsTr/{case}.nii.gz"), _arr(b / f"labelsTr/{case}.nii.gz")
        )
    assert get_label_set("psma").label_of("salivary_glands") in _arr(
        a / "labelsTr/SYNPSMA_0000.nii.gz"
    )


def test_no_organs_ablation_same_ids_binary_labels(fdg_cohort: Path, nnunet_dirs: dict) -> None:
    with_organs = _convert(fdg_cohort, "fdg", 516, "--seed", "3", "--test-fraction", "0.2")
    tumor_only = _convert(
        fdg_cohort, "fdg", 517, "--seed", "3", "--test-fraction", "0.2", "--no-organs"
    )
    assert json.loads((tumor_only / "dataset.json").read_text())["labels"] == {
        "background": 0,
        "tumor": 1,
    }
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        assert sorted(p.name for p in (with_organs / sub).iterdir()) == sorted(
            p.name for p in (tumor_only / sub).iterdir()
        )
    for p in (tumor_only / "labelsTr").iterdir():
        assert set(np.unique(_arr(p))) <= {0, 1}
        np.testing.assert_array_equal(_arr(p), _arr(with_organs / "labelsTr" / p.name) == 1)


def test_sharding_covers_every_case_once_and_rerun_skips(
    fdg_cohort: Path, nnunet_dirs: dict
) -> None:
    cases = discover_autopet(fdg_cohort / "studies", fdg_cohort / "organs", "fdg")
    ls = get_label_set("fdg")
    folder = convert_cohort(cases, 518, "S", ls, part_id=0, num_parts=2, progress=False)
    first = {p.name for p in (folder / "imagesTr").iterdir()}
    assert len(first) == 5
    convert_cohort(cases, 518, "S", ls, part_id=1, num_parts=2, progress=False)
    assert len(list((folder / "imagesTr").iterdir())) == 10
    assert len(pd.read_csv(folder / "lion_cases.csv")) == 10
    some = folder / "labelsTr" / "SYNFDG_0003.nii.gz"
    before = some.stat().st_mtime_ns
    convert_cohort(cases, 518, "S", ls, progress=False)
    assert some.stat().st_mtime_ns == before  # verified and skipped
    some.unlink()
    convert_cohort(cases, 518, "S", ls, progress=False)
    assert some.is_file()  # a missing output is rebuilt


def test_autopet3_nnunet_layout_filters_by_tracer(tmp_path: Path, fdg_cohort: Path) -> None:
    src = fdg_cohort / "studies/SYNFDG_0001/study_01"
    for sub in ("imagesTr", "labelsTr"):
        (tmp_path / sub).mkdir()
    for case in ("fdg_abc_2001", "psma_def_2002"):
        for f, dst in (("CTres", "_0000"), ("SUV", "_0001")):
            (tmp_path / "imagesTr" / f"{case}{dst}.nii.gz").write_bytes(
                (src / f"{f}.nii.gz").read_bytes()
            )
        (tmp_path / "labelsTr" / f"{case}.nii.gz").write_bytes((src / "SEG.nii.gz").read_bytes())
    cases = discover_autopet(tmp_path, tmp_path / "organs", "psma")
    assert [c.case_id for c in cases] == ["psma_def_2002"]
    assert cases[0].pet.name == "psma_def_2002_0001.nii.gz"


def test_reconversion_with_another_split_leaves_no_stale_cases(
    fdg_cohort: Path, nnunet_dirs
) -> None:
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    first = _convert(fdg_cohort, "fdg", 519, "--test-fraction", "0.2", "--seed", "1")
    before = {p.name for p in (first / "imagesTs").iterdir()}
    second = _convert(fdg_cohort, "fdg", 519, "--test-fraction", "0.3", "--seed", "2")
    after_tr = {p.name for p in (second / "imagesTr").iterdir()}
    after_ts = {p.name for p in (second / "imagesTs").iterdir()}
    assert len(after_ts) == 3 and not after_tr & after_ts and len(after_tr | after_ts) == 10
    assert before != after_ts
    verify_dataset_integrity(str(second), num_processes=1)  # numTraining matches imagesTr
