"""Reading and atomically writing images, tables and JSON, with errors that name the file.

Axis order: SimpleITK images are indexed (x, y, z); ``sitk.GetArrayFromImage`` returns numpy
arrays indexed (z, y, x). Functions here say which one they take.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError

#: Tolerances for "same grid": spacing/origin in mm, direction cosines unitless.
SPACING_TOL_MM = 1e-3
ORIGIN_TOL_MM = 1e-2
DIRECTION_TOL = 1e-4


def read_image(path: str | Path, what: str = "image") -> sitk.Image:
    """Read a medical image with SimpleITK, turning failures into one clear sentence.

    Args:
        path: a NIfTI/NRRD/MHA file.
        what: what the file is, for the message ("PET", "tumor mask", ...).
    """
    path = Path(path)
    if not path.is_file():
        raise LionError(f"{path}: {what} file not found")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable"
        raise LionError(
            f"{path}: cannot read {what} ({first}); is the file corrupt or truncated?"
        ) from None


def read_float_image(path: str | Path, what: str = "image") -> tuple[sitk.Image, np.ndarray]:
    """Read a float image once, keeping NaN: (image on its grid, float32 voxels (z, y, x)).

    SimpleITK's NIfTI reader replaces NaN with 0, which hides broken PET volumes, so for NIfTI the
    geometry comes from SimpleITK's header reader and the voxels from nibabel (same voxel order,
    transposed to z, y, x); other formats are read with SimpleITK.
    """
    path = Path(path)
    if path.name.endswith((".nii", ".nii.gz")) and path.is_file():
        import nibabel as nib

        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
            data = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
        except Exception:  # any failure: let read_image word the error
            data = None
        if data is not None and data.ndim == 3 and data.shape == tuple(reader.GetSize()):
            array = np.ascontiguousarray(data.transpose(2, 1, 0))
            image = sitk.GetImageFromArray(array)
            image.SetSpacing(reader.GetSpacing())
            image.SetOrigin(reader.GetOrigin())
            image.SetDirection(reader.GetDirection())
            return image, array
    image = read_image(path, what)
    return image, sitk.GetArrayFromImage(image).astype(np.float32, copy=False)


def image_to_array(image: sitk.Image) -> np.ndarray:
    """Voxel array of an image, numpy axis order (z, y, x)."""
    return sitk.GetArrayFromImage(image)


def array_to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Image from a (z, y, x) array, on the grid (spacing, origin, direction) of ``reference``."""
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


def geometry(image: sitk.Image) -> dict[str, tuple]:
    """Size (x, y, z voxels), spacing (mm), origin (mm) and direction of an image."""
    return {
        "size": tuple(image.GetSize()),
        "spacing": tuple(round(s, 4) for s in image.GetSpacing()),
        "origin": tuple(round(o, 3) for o in image.GetOrigin()),
        "direction": tuple(round(d, 4) for d in image.GetDirection()),
    }


def geometry_mismatch(a: sitk.Image, b: sitk.Image) -> str | None:
    """Describe how the grids of ``a`` and ``b`` differ, or None when they are the same grid."""
    if a.GetDimension() != b.GetDimension():
        return f"dimension {b.GetDimension()} differs from {a.GetDimension()}"
    if a.GetSize() != b.GetSize():
        return f"size {b.GetSize()} differs from {a.GetSize()} (x, y, z voxels)"
    if not np.allclose(a.GetSpacing(), b.GetSpacing(), atol=SPACING_TOL_MM):
        return f"spacing {geometry(b)['spacing']} mm differs from {geometry(a)['spacing']} mm"
    if not np.allclose(a.GetOrigin(), b.GetOrigin(), atol=ORIGIN_TOL_MM):
        return f"origin {geometry(b)['origin']} mm differs from {geometry(a)['origin']} mm"
    if not np.allclose(a.GetDirection(), b.GetDirection(), atol=DIRECTION_TOL):
        return f"direction {geometry(b)['direction']} differs from {geometry(a)['direction']}"
    return None


def voxel_volume_ml(image: sitk.Image) -> float:
    """Volume of one voxel in ml (product of spacings in mm / 1000)."""
    return float(np.prod(image.GetSpacing())) / 1000.0


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffixes); rename it onto ``path`` on success.

    The temporary file is removed if the block raises, so a crash never leaves a half-written
    output under the final name. It is created as ``open()`` creates a file (mode 0666 less the
    umask, default ACLs applied), not 0600 as ``tempfile.mkstemp`` would: outputs on a shared
    disk stay readable by the group when the umask allows it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes) or ".tmp"
    while True:
        tmp_path = path.parent / f".{path.name}.{secrets.token_hex(6)}.part{suffix}"
        try:  # O_EXCL: never reuse another writer's temporary file
            os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp_path
        tmp_path.replace(path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_image(image: sitk.Image, path: str | Path, compress: bool = True) -> Path:
    """Write an image atomically (temp file + rename)."""
    with atomic_path(path) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=compress)
    return Path(path)


def write_text(text: str, path: str | Path) -> Path:
    """Write a text file atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(data: Any, path: str | Path) -> Path:
    """Write JSON atomically (indent 2; numpy scalars converted)."""
    return write_text(json.dumps(data, indent=2, default=_json_default) + "\n", path)


def write_csv(frame: Any, path: str | Path) -> Path:
    """Write a pandas DataFrame as CSV atomically (no index column)."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
