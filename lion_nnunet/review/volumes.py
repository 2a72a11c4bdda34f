"""The slice viewer's data of one case: its NIfTIs in one script beside the case's pictures.

``GALLERY/images/<case>/volumes.js`` is one call ``lionVolumes(case_id, {...})`` whose values
are the case's NIfTI files, base64 of their gzip'd bytes:

* ``pet``: the PET in SUV (the case folder's ``suv.nii.gz``, else ``--pet``'s
  ``<case>_0000.nii.gz``, else report.json's ``input`` when it is a NIfTI: :func:`find_case_pet`);
* ``tumor``: the mask shown (``tumor_corrected.nii.gz`` where a correction exists and corrected
  masks are used, else ``tumor.nii.gz``), uint8 0/1 on the PET's grid;
* ``organs``: ``organs.nii.gz`` where the case has one (``lion predict --save-organs``);
* ``gt``: with ``--gt``, made here from the ground truth: 1 = the outline (voxels with a
  background face neighbour) of a true lesion the mask touches, 2 = every voxel of a true lesion
  the mask misses entirely (lesions: 18-connected components, as report.json counts them).

A script rather than files the page fetches: a page opened from disk (``file://``) may load
scripts of its folder but not fetch files, so the viewer works offline as well as served. The
page loads a case's script only when its viewer opens, so 1,000 cards stay light.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from pathlib import Path

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from lion_nnunet.errors import LionError
from lion_nnunet.io import array_to_image, geometry_mismatch, read_image

log = logging.getLogger(__name__)

SCRIPT = "volumes.js"
#: ``gt`` voxel values (see the module docstring).
GT_FOUND_OUTLINE, GT_MISSED = 1, 2


def pet_candidates(folder: Path, case_id: str, report: dict, pet_dir: Path | None) -> list[Path]:
    """Where a case's PET (SUV) may be, in the order tried (see :func:`find_case_pet`)."""
    from lion_nnunet.analysis.evaluate import find_pet

    candidates = [folder / "suv.nii.gz"]
    if pet_dir is not None:
        found = find_pet(Path(pet_dir), case_id)
        if found is not None:
            candidates.insert(0, found)
    source = report.get("input")
    if isinstance(source, str) and source.endswith((".nii", ".nii.gz")):
        candidates.append(Path(source))
    return candidates


def find_case_pet(folder: Path, case_id: str, report: dict, pet_dir: Path | None) -> Path | None:
    """The PET (SUV) file of a case: ``pet_dir``'s ``<case>_0000.nii.gz`` (or ``<case>.nii.gz``),
    else ``folder/suv.nii.gz`` (``lion predict --save-suv``), else report.json's ``input`` when it
    is a NIfTI; None when none exists."""
    for path in pet_candidates(folder, case_id, report, pet_dir):
        if path.is_file():
            return path
    return None


def _nifti_bytes(image: sitk.Image) -> bytes:
    """A gzip'd NIfTI file's bytes of ``image``."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"lion-view-{secrets.token_hex(8)}.nii.gz"
    try:
        sitk.WriteImage(image, str(tmp), useCompression=True)
        return tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)


def truth_overlay(truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The ``gt`` volume (uint8, same axes as the inputs): outlines of true lesions the mask
    touches (:data:`GT_FOUND_OUTLINE`) and whole true lesions it misses (:data:`GT_MISSED`).

    Examples:
        >>> truth = np.zeros((3, 5, 9), bool); truth[:, 1:4, 1:4] = truth[:, 1:4, 5:8] = True
        >>> mask = np.zeros_like(truth); mask[1, 2, 2] = True
        >>> truth_overlay(truth, mask)[1]  # the middle slice: (1, 2, 2) is inside in 3D
        array([[0, 0, 0, 0, 0, 0, 0, 0, 0],
               [0, 1, 1, 1, 0, 2, 2, 2, 0],
               [0, 1, 0, 1, 0, 2, 2, 2, 0],
               [0, 1, 1, 1, 0, 2, 2, 2, 0],
               [0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=uint8)
    """
    labels = cc3d.connected_components(truth.astype(np.uint8), connectivity=18)
    found = np.unique(labels[mask & truth])
    found_lesions = np.isin(labels, found[found > 0])
    # per 2D neighbourhood of each axis would hide a lesion's caps: a 3D face-neighbour outline
    inner = ndimage.binary_erosion(truth, structure=ndimage.generate_binary_structure(3, 1))
    out = np.zeros(truth.shape, np.uint8)
    out[found_lesions & ~inner] = GT_FOUND_OUTLINE
    out[truth & ~found_lesions] = GT_MISSED
    return out


def _truth_bytes(gt_path: Path, mask_path: Path, case_id: str) -> bytes | None:
    from lion_nnunet.analysis.evaluate import resolve_tumor_label

    truth_image = read_image(gt_path, "ground truth")
    mask_image = read_image(mask_path, "tumor mask")
    diff = geometry_mismatch(truth_image, mask_image)
    if diff:
        log.warning("%s: ground truth not shown in the viewer: grid differs from %s (%s)",
                    case_id, mask_path, diff)  # fmt: skip
        return None
    label = resolve_tumor_label(gt_path.parent, None)
    truth = sitk.GetArrayFromImage(truth_image) == label
    mask = sitk.GetArrayFromImage(mask_image) > 0
    return _nifti_bytes(array_to_image(truth_overlay(truth, mask), mask_image))


def case_volumes(folder: Path, case_id: str, mask_path: Path, pet_dir: Path | None = None,
                 gt_dir: Path | None = None) -> dict[str, bytes] | None:  # fmt: skip
    """The viewer's NIfTI files of one case (module docstring), or None without a PET."""
    report = json.loads((folder / "report.json").read_text())
    pet = find_case_pet(folder, case_id, report, pet_dir)
    if pet is None:
        looked = ", ".join(map(str, pet_candidates(folder, case_id, report, pet_dir)))
        log.debug("%s: no PET found (%s)", case_id, looked)
        return None
    volumes = {"pet": pet.read_bytes(), "tumor": mask_path.read_bytes()}
    if (folder / "organs.nii.gz").is_file():
        volumes["organs"] = (folder / "organs.nii.gz").read_bytes()
    if gt_dir is not None:
        gt_path = Path(gt_dir) / f"{case_id}.nii.gz"
        if gt_path.is_file():
            try:
                truth = _truth_bytes(gt_path, mask_path, case_id)
            except LionError as e:
                log.warning("%s: ground truth not shown in the viewer (%s)", case_id, e)
                truth = None
            if truth is not None:
                volumes["gt"] = truth
    return volumes


def volumes_script(case_id: str, volumes: dict[str, bytes]) -> str:
    """The text of ``volumes.js``: ``lionVolumes(case_id, {name: base64, ...});``."""
    data = {k: base64.b64encode(v).decode("ascii") for k, v in volumes.items()}
    return f"lionVolumes({json.dumps(case_id)}, {json.dumps(data)});\n"
