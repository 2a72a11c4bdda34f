"""Whole-file NIfTI reading: a file is read only when it holds every voxel its header describes.

SimpleITK (and so nnU-Net's reader) reads a truncated ``.nii.gz`` without complaint and fills the
missing voxels with 0; nibabel stops at the first missing byte but accepts a gzip stream cut
inside its 8-byte trailer. Here the stream is decompressed once, to its end-of-stream marker
(zlib checks the gzip CRC-32 and length there), and its length is compared with what the header
demands: ``vox_offset + prod(dim) * bitpix / 8`` bytes. :mod:`lion_nnunet.io` builds its images
on this; nothing else in the package reads NIfTI voxels.

Arrays here are in file order (x, y, z[, t]); :mod:`lion_nnunet.io` transposes them to (z, y, x).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lion_nnunet.errors import LionError

NIFTI_ENDINGS = (".nii", ".nii.gz")
GZIP_MAGIC = b"\x1f\x8b"
#: Bytes read (compressed) and produced (decompressed) per step: bounds memory while checking.
CHUNK = 1 << 22
#: zlib window bits for a gzip wrapper (zlib then checks the trailer's CRC-32 and length).
GZIP_WBITS = 16 + zlib.MAX_WBITS
#: Largest NIfTI header (NIfTI-2: 540 bytes; NIfTI-1: 348).
MAX_HEADER_BYTES = 540
AGAIN = "copy or export the file again (an interrupted copy or download?)"
#: Most bytes deflate produces per compressed byte (zlib's documented limit, 1032:1): a .nii.gz
#: whose header describes more than this many times its size is truncated or its header damaged.
MAX_DEFLATE_RATIO = 1032
#: Copies of the voxels alive while an image is read (as read, and in (z, y, x) order).
READ_COPIES = 2


def is_nifti(path: str | Path) -> bool:
    """True for ``.nii`` and ``.nii.gz`` file names."""
    return str(path).endswith(NIFTI_ENDINGS)


@dataclass(frozen=True)
class NiftiLayout:
    """Where the voxels of a NIfTI file lie, from its header.

    Attributes:
        shape: voxels per dimension in file order (x, y, z[, t, ...]).
        dtype: on-disk numpy dtype (with byte order).
        offset: ``vox_offset``: bytes before the first voxel.
        slope, inter: ``scl_slope``/``scl_inter``; None when the header asks for no scaling.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int
    slope: float | None
    inter: float | None

    @property
    def end(self) -> int:
        """Bytes the (decompressed) file must hold: offset + every voxel."""
        return self.offset + int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def describe(self) -> str:
        """``64x64x48 float32`` (file order x, y, z)."""
        return f"{'x'.join(map(str, self.shape))} {self.dtype.name}"


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == GZIP_MAGIC


def _first_bytes(path: Path, n: int) -> bytes:
    with path.open("rb") as f:
        raw = f.read(n if not _is_gzip(path) else CHUNK)
    if raw[:2] != GZIP_MAGIC:
        return raw
    return zlib.decompressobj(GZIP_WBITS).decompress(raw, n)


def read_layout(path: str | Path, what: str = "image") -> NiftiLayout:
    """Parse the header (NIfTI-1 or -2) of ``path``; LionError for an empty file or a bad header."""
    import nibabel as nib

    path = Path(path)
    if path.stat().st_size == 0:
        raise LionError(f"{path}: the {what} file is empty (0 bytes); {AGAIN}")
    try:
        head = _first_bytes(path, MAX_HEADER_BYTES)
    except zlib.error as e:
        raise LionError(f"{path}: the {what} file is damaged ({e}); {AGAIN}") from None
    header = None
    for klass in (nib.Nifti1Header, nib.Nifti2Header):
        try:
            header = klass.from_fileobj(io.BytesIO(head), check=True)
            break
        except Exception:  # nibabel raises several types for a header it cannot parse
            continue
    if header is None:
        raise LionError(
            f"{path}: the {what} file has no valid NIfTI header ({len(head)} bytes at its start "
            f"could not be parsed); {AGAIN}, or give a NIfTI"
        )
    slope, inter = header.get_slope_inter()
    return NiftiLayout(
        shape=tuple(int(n) for n in header.get_data_shape()),
        dtype=np.dtype(header.get_data_dtype()),
        offset=int(header.get_data_offset()),
        slope=None if slope is None else float(slope),
        inter=None if inter is None else float(inter),
    )


def _gzip_stream(path: Path, sink: Callable[[bytes], None]) -> bool:
    """Decompress every gzip member of ``path`` into ``sink``; True when the last one ended."""
    with path.open("rb") as raw:
        d, data = None, b""
        while True:
            if not data:
                data = raw.read(CHUNK)
                if not data:
                    break
            if d is None or d.eof:
                data = data.lstrip(b"\0")  # gzip allows zero padding between/after members
                if not data:
                    continue
                d = zlib.decompressobj(GZIP_WBITS)
            sink(d.decompress(data, CHUNK))
            data = d.unused_data if d.eof else d.unconsumed_tail
        if d is not None and not d.eof:
            sink(d.flush())
        return d is not None and d.eof


def read_stream(path: str | Path, layout: NiftiLayout, what: str, keep: bool) -> bytearray | None:
    """Read the whole (decompressed) file; LionError when it is shorter than ``layout`` demands.

    Args:
        path: a ``.nii`` or ``.nii.gz`` file.
        layout: its header's layout (:func:`read_layout`).
        what: the file's role in messages ("PET", "tumor mask", ...).
        keep: return the first ``layout.end`` bytes; False only checks (constant memory).
    """
    path = Path(path)
    need = layout.end
    if keep and not _can_hold(path, layout):
        # a damaged header or a cut file: counted in constant memory, which names the shortfall
        read_stream(path, layout, what, keep=False)
        raise LionError(  # pragma: no cover - the count above always falls short
            f"{path}: the {what} file's header describes {layout.describe()} voxels, more than "
            f"the file can hold; {AGAIN}"
        )
    if keep:
        _check_memory(path, layout, what)
    buffer = bytearray(need) if keep else None
    view = memoryview(buffer) if keep else None
    got = 0

    def sink(piece: bytes) -> None:
        nonlocal got
        if view is not None and got < need:
            n = min(len(piece), need - got)
            view[got : got + n] = piece[:n]
        got += len(piece)

    try:
        if _is_gzip(path):
            ended = _gzip_stream(path, sink)
        else:
            ended = True
            with path.open("rb") as f:
                while piece := f.read(CHUNK):
                    sink(piece)
    except zlib.error as e:  # bad deflate data, CRC-32 or length mismatch in the trailer
        raise LionError(f"{path}: the {what} file is damaged ({e}); {AGAIN}") from None
    if got < need:
        if got <= layout.offset:
            found = f"only its {got:,}-byte header and no voxels"
        else:
            found = f"{got:,} of the {need:,} bytes its header describes ({layout.describe()})"
        stop = "its compressed data stops after" if not ended else "it holds"
        raise LionError(f"{path}: the {what} file is truncated: {stop} {found}; {AGAIN}")
    if not ended:
        raise LionError(
            f"{path}: the {what} file is truncated: its compressed stream stops before the "
            f"end-of-stream marker (after {got:,} bytes); {AGAIN}"
        )
    return buffer


def _can_hold(path: Path, layout: NiftiLayout) -> bool:
    """False when ``path`` is too small for the bytes its header describes (before allocating
    them): a ``.nii`` shorter than ``layout.end``, a ``.nii.gz`` whose size times
    :data:`MAX_DEFLATE_RATIO` is less."""
    size = path.stat().st_size
    return layout.end <= (size * MAX_DEFLATE_RATIO if _is_gzip(path) else size)


def available_memory() -> int | None:
    """Bytes of memory available to this process now (psutil's estimate), None when unknown."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with distributed
        return None
    return int(psutil.virtual_memory().available)


def _check_memory(path: Path, layout: NiftiLayout, what: str) -> None:
    """LionError, before anything is allocated, when reading needs more memory than is free."""
    need = READ_COPIES * layout.end
    free = available_memory()
    if free is not None and need > free:
        raise LionError(
            f"{path}: reading the {what} ({layout.describe()}, {layout.end / 2**30:.1f} GiB of "
            f"voxels) needs about {need / 2**30:.1f} GiB of memory and {free / 2**30:.1f} GiB "
            "are available; free memory or use a machine with more (is the header's size right?)"
        )


def read_voxels(path: str | Path, what: str = "image") -> tuple[NiftiLayout, np.ndarray]:
    """Layout and voxels of a NIfTI, read whole, in file order (x, y, z[, t]) and native byte order.

    Scaling (``scl_slope``/``scl_inter``) is applied as NIfTI says (float64 for integer data,
    as nibabel does; callers cast). LionError (one sentence naming the file) for an empty,
    truncated or damaged file.
    """
    layout = read_layout(path, what)
    buffer = read_stream(path, layout, what, keep=True)
    count = int(np.prod(layout.shape, dtype=np.int64))
    data = np.frombuffer(buffer, dtype=layout.dtype, count=count, offset=layout.offset)
    data = data.reshape(layout.shape, order="F")
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    if layout.slope is not None and (layout.slope != 1.0 or layout.inter not in (None, 0.0)):
        data = data * layout.slope + (layout.inter or 0.0)
    return layout, data


def gzip_length_matches(path: str | Path, layout: NiftiLayout) -> bool:
    """Cheap test: the gzip trailer's length field equals the length the header demands (mod 2^32).

    A True answer is strong evidence, not proof (the full read checks again); False means the
    file is truncated, damaged, multi-member or has trailing data: check it with
    :func:`read_stream`.
    """
    path = Path(path)
    if not _is_gzip(path):
        return path.stat().st_size >= layout.end
    with path.open("rb") as f:
        f.seek(0, io.SEEK_END)
        if f.tell() < 18:  # gzip header (10) + trailer (8)
            return False
        f.seek(-4, io.SEEK_END)
        isize = int.from_bytes(f.read(4), "little")
    return isize == layout.end % (1 << 32)
