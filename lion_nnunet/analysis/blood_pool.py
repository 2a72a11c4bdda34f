"""PERCIST's blood-pool reference: SUL in a 1 cm x 2 cm cylinder in the descending aorta.

"If the liver is abnormal, blood pool SUL (2.0 x mean of the blood pool in a 1-cm diameter x
2-cm long cylinder in the descending thoracic aorta + 2 SDs) ..." (Wahl 2009, Appendix; O 2016).
LION's organ sets have no aorta, so the aorta comes from a mask the user gives: a binary mask or
TotalSegmentator's ``total`` label map (aorta = 52), on any grid; it is
resampled onto the PET (nearest neighbour, same physical space).

Where the cylinder goes: in the axial slices where the aorta shows two parts (ascending in front,
descending behind: the level of the heart), the descending aorta is the part with the largest
physical y (LPS: y grows to the patient's back). The cylinder is vertical (numpy axis 0), centred
on that part's centroid in the middle such slice, radius 5 mm, 2 cm long, clipped to the aorta
mask. When no slice shows two parts the middle of the aorta is used and ``where`` says so.
Arrays are numpy (z, y, x).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import label

from lion_nnunet.analysis.response_masks import read_structure
from lion_nnunet.errors import LionError

CYLINDER_RADIUS_MM = 5.0
CYLINDER_LENGTH_MM = 20.0


@dataclass(frozen=True)
class BloodPool:
    """Blood-pool SUL: mean and SD (ddof=1) in the cylinder, its voxels and where it was put."""

    sul_mean: float
    sul_sd: float
    voxels: int
    centre_zyx: tuple[int, int, int]
    where: str  # "descending aorta" or "middle of the aorta (descending part not identified)"


def read_aorta(path: str | Path, pet: sitk.Image, what: str) -> np.ndarray:
    """The aorta of a binary mask or TotalSegmentator ``total`` map (id 52), on the PET's grid."""
    return read_structure(path, pet, what, "aorta")


def _descending(aorta: np.ndarray, y_of) -> tuple[int, np.ndarray, bool]:
    """(slice, in-plane centroid (y, x) index, found two parts) of the cylinder's centre."""
    slices = [z for z in range(aorta.shape[0]) if aorta[z].any()]
    two = []
    for z in slices:
        parts, n = label(aorta[z])
        if n >= 2:
            two.append((z, parts, n))
    if two:
        z, parts, n = two[len(two) // 2]
        centres = [np.argwhere(parts == k).mean(0) for k in range(1, n + 1)]
        back = max(centres, key=lambda c: y_of(z, c))
        return z, back, True
    z = slices[len(slices) // 2]
    parts, n = label(aorta[z])
    sizes = np.bincount(parts.ravel())[1:]
    return z, np.argwhere(parts == int(sizes.argmax()) + 1).mean(0), False


def blood_pool(sul: np.ndarray, aorta: np.ndarray, image: sitk.Image) -> BloodPool:
    """SUL mean and SD in PERCIST's descending-aorta cylinder (see the module docstring).

    Args:
        sul: PET in SUL (z, y, x).
        aorta: aorta mask on the PET's grid (z, y, x).
        image: the PET image (spacing, and physical y to tell front from back).
    """

    def y_of(z: int, yx: np.ndarray) -> float:
        return image.TransformContinuousIndexToPhysicalPoint(
            (float(yx[1]), float(yx[0]), float(z))
        )[1]

    sz, sy, sx = image.GetSpacing()[::-1]
    z, centre, found = _descending(aorta, y_of)
    n_slices = max(1, round(CYLINDER_LENGTH_MM / sz))
    z0 = max(0, min(z - n_slices // 2, aorta.shape[0] - n_slices))
    yy, xx = np.mgrid[: aorta.shape[1], : aorta.shape[2]]
    disc = ((yy - centre[0]) * sy) ** 2 + ((xx - centre[1]) * sx) ** 2 <= CYLINDER_RADIUS_MM**2
    cylinder = np.zeros(aorta.shape, bool)
    cylinder[z0 : z0 + n_slices] = disc
    cylinder &= aorta
    values = sul[cylinder].astype(np.float64)
    if values.size < 2:
        raise LionError("the aorta mask is too thin for a 1 cm blood-pool cylinder")
    where = (
        "descending aorta"
        if found
        else ("middle of the aorta (descending part not identified: no slice shows two parts)")
    )
    centre_zyx = (int(z), round(float(centre[0])), round(float(centre[1])))
    return BloodPool(float(values.mean()), float(values.std(ddof=1)), int(values.size),
                     centre_zyx, where)  # fmt: skip
