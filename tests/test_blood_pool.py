"""The blood-pool cylinder of PERCIST, against hand counts on a synthetic aorta."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lion_nnunet.analysis.blood_pool import blood_pool, read_aorta
from lion_nnunet.errors import LionError


def _grid(shape, spacing=2.0) -> sitk.Image:
    img = sitk.Image(*shape[::-1], sitk.sitkFloat32)
    img.SetSpacing((spacing,) * 3)
    return img


def _candy_cane():
    """(z 40, y 30, x 30) at 2 mm: ascending tube at y index 8 (front), descending at y 22
    (back, higher LPS y), both radius 4 voxels for z 5..34, joined by an arch at z 35..38."""
    shape = (40, 30, 30)
    zz, yy, xx = np.mgrid[: shape[0], : shape[1], : shape[2]]
    aorta = np.zeros(shape, bool)
    for y0 in (8, 22):
        aorta |= ((yy - y0) ** 2 + (xx - 15) ** 2 <= 16) & (zz >= 5) & (zz <= 34)
    aorta |= (zz >= 35) & (zz <= 38) & (yy >= 4) & (yy <= 26) & (abs(xx - 15) <= 4)
    return aorta, zz, yy


def test_cylinder_in_the_descending_aorta_by_hand() -> None:
    aorta, zz, yy = _candy_cane()
    sul = np.where(yy > 15, 1.5 + 0.1 * (zz % 2), 3.0).astype(np.float32)  # ascending: 3.0
    pool = blood_pool(sul, aorta, _grid(aorta.shape))
    # two parts in slices 5..34 (30 slices): the middle one, z 20; 20 mm / 2 mm = 10 slices
    # (z 15..24); a 5 mm disc at 2 mm holds i^2 + j^2 <= 6.25: 5 + 2 x 5 + 2 x 3 = 21 voxels
    assert pool.where == "descending aorta" and pool.centre_zyx == (20, 22, 15)
    assert pool.voxels == 10 * 21
    # 105 voxels of 1.5 and 105 of 1.6: mean 1.55, SD 0.05 x sqrt(210 / 209)
    assert pool.sul_mean == pytest.approx(1.55, abs=1e-6)
    assert pool.sul_sd == pytest.approx(0.05 * np.sqrt(210 / 209), rel=1e-4)


def test_one_tube_falls_back_to_the_middle_and_says_so() -> None:
    aorta, _, _ = _candy_cane()
    aorta[:, :16] = False  # no ascending part, no arch front: one part per slice
    pool = blood_pool(np.full(aorta.shape, 1.2, np.float32), aorta, _grid(aorta.shape))
    assert "not identified" in pool.where and pool.sul_mean == pytest.approx(1.2)


def test_read_aorta_takes_totalsegmentator_52_on_another_grid(tmp_path: Path) -> None:
    pet = _grid((10, 10, 10), 4.0)
    labels = np.zeros((20, 20, 20), np.uint8)  # 2 mm grid over the same 40 mm
    labels[4:8, 4:8, 4:8] = 52
    labels[10:14, 10:14, 10:14] = 5  # TotalSegmentator's liver: not the aorta
    img = sitk.GetImageFromArray(labels)
    img.SetSpacing((2.0,) * 3)
    sitk.WriteImage(img, str(tmp_path / "total.nii.gz"))
    aorta = read_aorta(tmp_path / "total.nii.gz", pet, "baseline")
    # 2 mm voxel centres 8..14 mm -> 4 mm voxels 2 and 3 (centres 8, 12 mm) on each axis
    assert aorta.shape == (10, 10, 10) and aorta.sum() == 8 and aorta[2:4, 2:4, 2:4].all()
    labels[labels == 52] = 7
    img = sitk.GetImageFromArray(labels)
    img.SetSpacing((2.0,) * 3)
    sitk.WriteImage(img, str(tmp_path / "other.nii.gz"))
    with pytest.raises(LionError, match="no 52"):
        read_aorta(tmp_path / "other.nii.gz", pet, "baseline")
