"""Masks of one structure (aorta, liver) from any grid, onto a PET's grid.

``lion response`` takes the aorta (blood pool) and, optionally, the liver as a binary mask or as
TotalSegmentator's ``total`` label map (the structure's class id picked out), on any grid: the
CT grid TotalSegmentator writes, or the PET's. The mask is resampled onto the PET by nearest
neighbour in physical space (no registration: the CT and PET of one study share it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError
from lion_nnunet.io import read_image

#: TotalSegmentator v2 ``total`` class ids (totalsegmentator/map_to_binary.py).
TOTALSEG_TOTAL_IDS = {"liver": 5, "aorta": 52}


def read_structure(path: str | Path, pet: sitk.Image, what: str, structure: str) -> np.ndarray:
    """The ``structure`` of a mask file on the PET's grid (z, y, x bool).

    Args:
        path: binary mask (0/1), or TotalSegmentator's ``total`` label map.
        pet: the PET image whose grid the mask is resampled onto.
        what: "baseline" or "followup", for messages.
        structure: a key of :data:`TOTALSEG_TOTAL_IDS`.

    Raises:
        LionError: unreadable, several labels but not the structure's id, or no voxel of it in
            the PET's field of view.
    """
    class_id = TOTALSEG_TOTAL_IDS[structure]
    image = read_image(path, f"{what} {structure} mask")
    values = np.unique(sitk.GetArrayViewFromImage(image))
    if set(values.tolist()) <= {0, 1}:
        mask = sitk.NotEqual(image, 0)
    elif class_id in values:
        mask = sitk.Equal(image, class_id)
    else:
        raise LionError(
            f"{path}: {what} {structure} mask has labels {values[:8].tolist()} but no "
            f"{class_id} (TotalSegmentator's {structure}); give a binary {structure} mask or "
            "TotalSegmentator's total label map"
        )
    on_pet = sitk.Resample(sitk.Cast(mask, sitk.sitkUInt8), pet, sitk.Transform(),
                           sitk.sitkNearestNeighbor, 0)  # fmt: skip
    arr = sitk.GetArrayFromImage(on_pet) > 0
    if not arr.any():
        raise LionError(
            f"{path}: the {what} {structure} mask has no voxel inside the PET's field of view; "
            "give the mask made from this study's CT"
        )
    return arr
