"""Scores of the organ-context ablation, against volumes and counts worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lion_nnunet.analysis.ablation_scores import paired, score_case, summarize


def test_score_case_splits_fp_at_hot_organs_from_elsewhere() -> None:
    label = np.zeros((40, 40, 40), np.uint8)
    label[5:10, 5:10, 5:10] = 1  # tumor: 125 voxels
    label[20:30, 20:30, 20:30] = 7  # a hot organ
    pred = np.zeros_like(label)
    pred[5:10, 5:10, 5:8] = 1  # 75 voxels on the tumor
    pred[31:33, 20:22, 20:22] = 1  # 8 voxels, 1 voxel (2 mm) off the organ: FP at hot organ
    pred[2:4, 30:32, 2:4] = 1  # 8 voxels far from everything: FP elsewhere
    s = score_case(pred, label, [7], np.array([2.0, 2.0, 2.0]), margin_mm=4.0)
    voxel_ml = 8 / 1000
    assert s["dice"] == pytest.approx(2 * 75 / (125 + 91))
    assert s["fp_at_hot_organ_ml"] == pytest.approx(8 * voxel_ml)
    assert s["fp_elsewhere_ml"] == pytest.approx(8 * voxel_ml)
    assert (s["lesions_tp"], s["lesions_fp"], s["lesions_fn"]) == (1, 2, 0)


def test_summary_takes_the_median_over_cases_with_tumor_and_pools_lesions() -> None:
    per_case = pd.DataFrame(
        {"has_tumor": [True, True, True, False], "dice": [0.2, 0.6, 0.8, 0.0],
         "lesions_tp": [1, 2, 3, 0], "lesions_fp": [1, 0, 0, 2], "lesions_fn": [1, 0, 1, 0],
         "fp_at_hot_organ_ml": [0.5, 0, 0, 1.5], "fp_elsewhere_ml": [0, 0, 0.25, 0],
         "fn_ml": [1, 0, 2, 0]}
    )  # fmt: skip
    s = summarize(per_case)
    assert s["median_dice"] == 0.6 and s["cases_with_tumor"] == 3
    assert s["lesion_f1"] == pytest.approx(2 * 6 / (2 * 6 + 3 + 2))
    assert s["fp_at_hot_organs_ml"] == 2.0


def test_paired_difference_ci_and_wilcoxon() -> None:
    a = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    r = paired(a, a - 0.1)
    assert r["median_diff"] == pytest.approx(0.1) and r["ci95"] == pytest.approx([0.1, 0.1])
    # all 8 differences positive: exact two-sided signed-rank p = 2 / 2**8
    assert r["p"] == pytest.approx(2 / 2**8)
    assert paired(a, a)["p"] == 1.0


def test_threshold_reference_keeps_voxels_above_the_fraction_of_each_lesions_own_suvmax() -> None:
    from lion_nnunet.analysis.ablation_scores import threshold_reference_case

    pet = np.ones((20, 20, 30), np.float32)
    gt = np.zeros(pet.shape, bool)
    gt[5:8, 5:8, 5:8] = True  # lesion A: 27 voxels
    pet[5:8, 5:8, 5:8] = 10.0
    pet[6, 6, 6] = 20.0  # SUVmax of A: 41 % of it is 8.2
    pet[5, 5, 5] = 7.0  # in A, below 8.2: missed
    pet[8, 6, 6] = 9.0  # 1 voxel (4 mm) outside A, above 8.2: taken
    pet[9, 6, 6] = 9.0  # 2 voxels (8 mm) outside A, above 8.2: taken
    pet[11, 6, 6] = 50.0  # 4 voxels (16 mm) outside A: beyond the 12 mm margin, ignored
    gt[5:7, 5:7, 20:22] = True  # lesion B: 8 voxels, SUVmax 4 -> threshold 1.64
    pet[5:7, 5:7, 20:22] = 4.0
    pet[5, 5, 20] = 1.5  # below 1.64: missed; background 1.0 around B stays out
    got = threshold_reference_case(pet, gt, np.array([4.0, 4.0, 4.0]), 0.41, margin_mm=12.0)
    expected = gt.copy()
    expected[5, 5, 5] = expected[5, 5, 20] = False
    expected[8, 6, 6] = expected[9, 6, 6] = True
    np.testing.assert_array_equal(got, expected)
    # the 50 % isocontour of A (10.0) drops A's 9.0 neighbours, keeps its 10.0 voxels
    got50 = threshold_reference_case(pet, gt, np.array([4.0, 4.0, 4.0]), 0.5, margin_mm=12.0)
    assert not got50[8, 6, 6] and got50[5, 5, 6] and got50.sum() == 27 - 1 + 8 - 1


def test_threshold_reference_checks_every_case_before_writing_any(tmp_path) -> None:
    import SimpleITK as sitk

    from lion_nnunet.analysis.ablation_scores import threshold_reference
    from lion_nnunet.errors import LionError

    labels, images = tmp_path / "labelsTs", tmp_path / "imagesTs"
    labels.mkdir()
    images.mkdir()
    label = sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8))
    label.SetSpacing((4.0, 4.0, 4.0))
    for case in ("PETCT_0af7ffe12a_0", "PETCT_0af7ffe12a_1"):  # one patient, two studies
        sitk.WriteImage(label, str(labels / f"{case}.nii.gz"))
    pet = sitk.GetImageFromArray(np.ones((4, 4, 4), np.float32))
    pet.SetSpacing((4.0, 4.0, 4.0))
    sitk.WriteImage(pet, str(images / "PETCT_0af7ffe12a_0_0000.nii.gz"))
    with pytest.raises(LionError, match=r"no PET PETCT_0af7ffe12a_1_0000\.nii\.gz"):
        threshold_reference(images, labels, tmp_path / "ref", 0.41)
    pet.SetSpacing((2.0, 4.0, 4.0))  # the second study's PET on another grid
    sitk.WriteImage(pet, str(images / "PETCT_0af7ffe12a_1_0000.nii.gz"))
    with pytest.raises(LionError, match=r"PETCT_0af7ffe12a_1_0000\.nii\.gz is not on the grid"):
        threshold_reference(images, labels, tmp_path / "ref", 0.41)
    assert not (tmp_path / "ref").exists()  # the first study's mask was not written either
