"""Does this image look like a PET in SUV? The value checks every PET input goes through.

One function, :func:`check_pet_values`, serves ``lion predict``, the Python API
(``LionModel.segment``), the converters (``lion convert autopet|manifest|dicom``),
``lion postprocess`` and ``lion evaluate --pet``; :func:`read_pet` is the project's reader
(:func:`lion_nnunet.io.read_float_image`, which refuses incomplete files) followed by it.

Refused (LionError, one sentence naming the file):

* NaN/inf voxels;
* a minimum below :data:`MIN_PLAUSIBLE_SUV` (-1): SUV is a concentration ratio, never clearly
  negative; -1024 .. -500 is air in a CT in HU (the message says so when such voxels are there);
* an empty PET (maximum <= 0);
* a maximum above :data:`MAX_PLAUSIBLE_SUV` (500): Bq/ml or counts, or an unclipped CT.

Warned about (logged, and returned so that a caller can record them):

* negative voxels above -1 (a reconstruction undershoot);
* a label-map-like image: only integer values, at most :data:`LABEL_MAP_MAX_VALUES` distinct;
* a body median above :data:`MAX_BODY_MEDIAN_SUV` (2): kBq/ml-like; see its comment.

Arrays are numpy, any axis order (the checks do not look at geometry).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError

log = logging.getLogger(__name__)

#: Above this value a "SUV" image is almost surely in Bq/ml (or counts): refused. Physiological
#: and tumor FDG/PSMA SUVs stay below ~100 (bladder and kidneys included); Bq/ml images of a
#: whole-body scan reach thousands.
MAX_PLAUSIBLE_SUV = 500.0
#: Below this value the image is not SUV: refused. Reconstructions are non-negative or undershoot
#: by a fraction of an SUV; a CT in HU has air at -1000 (even clipped to [-1024, 400]).
MIN_PLAUSIBLE_SUV = -1.0
#: Voxels at or below this value look like air or lung in a CT (HU); only changes the message.
CT_AIR_HU = -500.0
#: Warn when the median of the body (voxels above the image mean) is above this. Whole-body
#: SUV backgrounds: FDG muscle 0.6-1, fat ~0.3, blood pool 1.5-2, liver 2-2.5, so the body median
#: is ~0.7-1.3 (PSMA: lower, ~0.4-0.6); the phantoms: 0.65-0.9 (FDG), 0.43-0.61 (PSMA). In kBq/ml
#: every value is multiplied by the decayed dose per body weight: ~2.4 for 3.5 MBq/kg of F-18 one
#: hour after injection, so the body median of a kBq/ml FDG image is ~2-4. A partial field of view
#: (head only) can also cross it, and a kBq/ml image of a low-dose or Ga-68 scan (factor ~1) does
#: not: a warning, not a refusal.
MAX_BODY_MEDIAN_SUV = 2.0
#: Warn when every voxel is an integer and there are at most this many distinct values (a uint8
#: label map, e.g. a binary tumor mask or TotalSegmentator's 118 classes, given as PET). A PET in
#: SUV has thousands of distinct non-integer values.
LABEL_MAP_MAX_VALUES = 256
#: The statistics of the warnings use at most this many voxels (an even subsample).
SAMPLE_VOXELS = 2_000_000


def _sample(suv: np.ndarray) -> np.ndarray:
    flat = np.asarray(suv).ravel()
    return flat[:: max(1, flat.size // SAMPLE_VOXELS)]


def _refusal(suv: np.ndarray, where: str | Path) -> str | None:
    if not np.isfinite(suv).all():
        return (
            f"{where}: PET has {int((~np.isfinite(suv)).sum())} NaN/inf voxels; expected finite "
            "SUV everywhere (a failed reconstruction or conversion?): export the PET again"
        )
    vmin, vmax = float(suv.min()), float(suv.max())
    if vmin < MIN_PLAUSIBLE_SUV:
        below = int((suv < MIN_PLAUSIBLE_SUV).sum())
        air = int((suv <= CT_AIR_HU).sum())
        why = (
            f"it looks like a CT in HU ({air} voxels at or below {CT_AIR_HU:g}, air is -1000 HU)"
            if air
            else "SUV is never this negative (a subtraction image, or Bq/ml with negative noise?)"
        )
        return (
            f"{where}: PET minimum is {vmin:g} ({below} voxels below {MIN_PLAUSIBLE_SUV:g}), "
            f"implausible for SUV; {why}: give the PET in SUV, not the CT or another image"
        )
    if vmax <= 0:
        return f"{where}: PET is empty (maximum {vmax:g}); expected SUV > 0 somewhere"
    if vmax > MAX_PLAUSIBLE_SUV:
        return (
            f"{where}: PET maximum is {vmax:g}, implausible for SUV (> {MAX_PLAUSIBLE_SUV:g}); it "
            "looks like Bq/ml or counts, not SUV: convert to SUV first (lion convert dicom, or "
            "give lion predict the DICOM series)"
        )
    return None


def _warnings(suv: np.ndarray, where: str | Path) -> list[str]:
    out = []
    vmin = float(suv.min())
    if vmin < 0:
        n = int((suv < 0).sum())
        out.append(
            f"{where}: {n} negative SUV voxels (min {vmin:.3g}); SUV is >= 0 (a reconstruction "
            "undershoot?)"
        )
    sample = _sample(suv)
    if np.array_equal(sample, np.round(sample)):
        values = np.unique(sample)
        if len(values) <= LABEL_MAP_MAX_VALUES:
            shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if len(values) > 5 else "")
            out.append(
                f"{where}: only {len(values)} distinct integer values ({shown}); it looks like a "
                "label map or mask, not a PET in SUV: check that the PET file was given"
            )
            return out  # the body median of a label map says nothing about units
    body = sample[sample > sample.mean()]
    if body.size:
        median = float(np.median(body))
        if median > MAX_BODY_MEDIAN_SUV:
            out.append(
                f"{where}: the body's median value is {median:.3g} (voxels above the image mean), "
                f"above the {MAX_BODY_MEDIAN_SUV:g} of a whole-body SUV background (~0.5-1.5); it "
                "looks like kBq/ml, not SUV (or a partial field of view): check the units"
            )
    return out


def check_pet_values(suv: np.ndarray, where: str | Path) -> list[str]:
    """Refuse a PET whose values are not SUV; log and return the warnings (see the module doc).

    Args:
        suv: PET voxels (any axis order), expected in SUV (g/ml).
        where: the file, folder or case named in the messages.

    Returns:
        The warnings (each one sentence naming ``where``), already logged.

    Examples:
        >>> import numpy as np
        >>> from lion_nnunet.inference.plausibility import check_pet_values
        >>> air, body, liver = np.zeros(50), np.full(40, 0.8), np.full(10, 2.3)
        >>> check_pet_values(np.r_[air, body, liver, 12.5], "p.nii.gz")  # SUV: no warning
        []
        >>> check_pet_values(np.array([-1024.0, 40.0, 400.0]), "ct.nii.gz")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        lion_nnunet.errors.LionError: ct.nii.gz: PET minimum is -1024 ... looks like a CT in HU ...
    """
    suv = np.asarray(suv)
    refusal = _refusal(suv, where)
    if refusal:
        raise LionError(refusal)
    found = _warnings(suv, where)
    for message in found:
        log.warning("%s", message)
    return found


def read_pet(path: str | Path, what: str = "PET") -> tuple[sitk.Image, np.ndarray, list[str]]:
    """Read a PET file whole and check its values: (image, SUV float32 (z, y, x), warnings)."""
    from lion_nnunet.io import read_float_image

    image, suv = read_float_image(path, what)
    return image, suv, check_pet_values(suv, path)
