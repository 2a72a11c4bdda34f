"""Reading and atomically writing images, tables and JSON, with errors that name the file.

Axis order: SimpleITK images are indexed (x, y, z); ``sitk.GetArrayFromImage`` returns numpy
arrays indexed (z, y, x). Functions here say which one they take.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from lion_nnunet.errors import LionError
from lion_nnunet.nifti import gzip_length_matches, is_nifti, read_layout, read_stream, read_voxels

#: Tolerances for "same grid": spacing/origin in mm, direction cosines unitless.
SPACING_TOL_MM = 1e-3
ORIGIN_TOL_MM = 1e-2
DIRECTION_TOL = 1e-4


def _geometry_reader(path: Path, what: str) -> sitk.ImageFileReader:
    """SimpleITK's view of the header (spacing, origin, direction as nnU-Net's reader sees them)."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable"
        raise LionError(
            f"{path}: cannot read the {what} header ({first}); is the file corrupt or not an image?"
        ) from None
    return reader


def _volume_shape(shape: tuple[int, ...], path: Path, what: str) -> tuple[int, ...]:
    """The (x, y, z) shape of a 3-D volume (trailing size-1 dimensions dropped), else LionError."""
    shape = tuple(shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    sizes = "x".join(map(str, shape))
    if len(shape) == 4:
        raise LionError(
            f"{path}: the {what} is 4-D with {shape[3]} frames of {'x'.join(map(str, shape[:3]))} "
            "voxels (a dynamic or gated PET?); one 3-D frame per study is expected: give the "
            "static image, or one frame per file"
        )
    if len(shape) != 3:
        raise LionError(f"{path}: the {what} has {len(shape)} dimension(s) ({sizes}); expected "
                        "one 3-D volume (x, y, z)")  # fmt: skip
    if min(shape) < 1:
        raise LionError(f"{path}: the {what} is empty ({sizes} voxels); expected a 3-D volume")
    return shape


def _check_finite(array: np.ndarray, path: Path, what: str) -> None:
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise LionError(
            f"{path}: the {what} has {bad} NaN/inf voxels (a failed reconstruction or "
            "conversion?); expected finite values everywhere: export the image again"
        )


def _read_checked(
    path: str | Path, what: str
) -> tuple[sitk.ImageFileReader | sitk.Image, np.ndarray]:
    """(geometry source, voxels (z, y, x)) of a whole, finite, 3-D scalar image; see read_image."""
    path = Path(path)
    if not path.is_file():
        raise LionError(f"{path}: {what} file not found")
    if is_nifti(path):
        layout = read_layout(path, what)
        shape = _volume_shape(layout.shape, path, what)
        if np.dtype(layout.dtype).fields is not None:
            raise LionError(f"{path}: the {what} holds RGB/vector voxels ({layout.dtype}); "
                            "expected one value per voxel")  # fmt: skip
        reader = _geometry_reader(path, what)
        _, data = read_voxels(path, what)
        if tuple(reader.GetSize()) != shape:
            raise LionError(
                f"{path}: the {what} header is inconsistent (SimpleITK reads size "
                f"{reader.GetSize()}, the NIfTI header {shape}); export the image again"
            )
        if data.dtype == np.float64 and layout.dtype != np.float64:
            data = data.astype(np.float32)  # integers scaled by scl_slope: float32, as SimpleITK
        array = np.ascontiguousarray(data.reshape(shape, order="F").transpose(2, 1, 0))
        _check_finite(array, path, what)
        return reader, array
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else "unreadable"
        raise LionError(
            f"{path}: cannot read {what} ({first}); is the file corrupt or truncated?"
        ) from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise LionError(f"{path}: the {what} has {image.GetNumberOfComponentsPerPixel()} values "
                        "per voxel; expected one")  # fmt: skip
    _volume_shape(image.GetSize(), path, what)
    array = sitk.GetArrayFromImage(image)
    _check_finite(array, path, what)
    return image, array


def _on_geometry(array: np.ndarray, source: sitk.ImageFileReader | sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(source.GetSpacing())
    image.SetOrigin(source.GetOrigin())
    image.SetDirection(source.GetDirection())
    return image


def read_image(path: str | Path, what: str = "image") -> sitk.Image:
    """Read a 3-D image whole, or stop with one sentence naming the file (the project's one reader).

    Refused with a :class:`LionError`: a missing, empty (0 bytes), truncated or damaged file (for
    NIfTI the decompressed stream must reach its end-of-stream marker and hold every voxel the
    header describes, see :mod:`lion_nnunet.nifti`), a header-only file, 4-D (dynamic) or 2-D
    images, vector voxels and NaN/inf voxels. NIfTI voxels are read with the package's own
    reader (SimpleITK would fill missing voxels and NaN with 0), the geometry with SimpleITK's
    header reader, so spacing, origin and direction are the ones nnU-Net sees. Other formats
    (``.mha``, ``.nrrd``) are read with SimpleITK.

    Args:
        path: a NIfTI/NRRD/MHA file.
        what: what the file is, for the message ("PET", "tumor mask", ...).

    Returns:
        The image (x, y, z), voxel type as stored (float when the NIfTI header scales values).
    """
    source, array = _read_checked(path, what)
    return source if isinstance(source, sitk.Image) else _on_geometry(array, source)


def read_float_image(path: str | Path, what: str = "image") -> tuple[sitk.Image, np.ndarray]:
    """Read an image whole, as :func:`read_image`: (image on its grid, float32 voxels (z, y, x))."""
    source, array = _read_checked(path, what)
    array = array.astype(np.float32, copy=False)
    return _on_geometry(array, source), array


def check_image_file(path: str | Path, what: str = "image", quick: bool = False) -> None:
    """The whole-file checks of :func:`read_image` without keeping the voxels (constant memory).

    For a reader that is not ours (nnU-Net's image reader) and for checking a cohort before
    converting it. ``quick``: for a ``.nii.gz`` compare the gzip trailer's length field with
    the header instead of decompressing (decompressed only when they disagree); an image that
    passes is still read whole later. Non-NIfTI files: header only.
    """
    path = Path(path)
    if not path.is_file():
        raise LionError(f"{path}: {what} file not found")
    if not is_nifti(path):
        _volume_shape(_geometry_reader(path, what).GetSize(), path, what)
        return
    layout = read_layout(path, what)
    _volume_shape(layout.shape, path, what)
    _geometry_reader(path, what)
    if not (quick and gzip_length_matches(path, layout)):
        read_stream(path, layout, what, keep=False)


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


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


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
