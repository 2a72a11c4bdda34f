"""Click files of the autoPET IV challenge: read, check against an image, write.

Two forms, both written by the official toolkit (lab-midas/autoPETCTIV,
``clicks/simulate_clicks.py``) and both read as they are:

* simple: ``{"tumor": [[i, j, k], ...], "background": [[i, j, k], ...]}``
* Grand-Challenge "Multiple points": ``{"version": {"major": 1, "minor": 0}, "type":
  "Multiple points", "points": [{"point": [i, j, k], "name": "tumor" | "background"}, ...]}``

A point is a voxel index (i, j, k) of the PET NIfTI in nibabel's axis order (the file's x, y, z
order; SimpleITK's index is the same). A file may instead give physical points in mm with a
top-level ``"space": "LPS"`` (DICOM/ITK patient coordinates, as SimpleITK reports them) or
``"space": "RAS"`` (nibabel's world coordinates; x and y negated); they are mapped to the
nearest voxel of the image. ``"space": "voxel"`` is the default.

The order of each kind of click is kept: after step ``n`` of the protocol the first ``n`` tumor
and the first ``n`` background clicks have been given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from lion_nnunet.errors import LionError
from lion_nnunet.io import write_json

NAMES = ("tumor", "background")
SPACES = ("voxel", "LPS", "RAS")
FORMS = ("simple", "gc")
GC_TYPE = "Multiple points"

Point = tuple[int, int, int]


@dataclass(frozen=True)
class Clicks:
    """Tumor and background clicks of one study, voxel indices (i, j, k), in click order."""

    tumor: tuple[Point, ...] = field(default_factory=tuple)
    background: tuple[Point, ...] = field(default_factory=tuple)

    def first(self, n: int) -> Clicks:
        """The clicks of step ``n``: the first ``n`` of each kind."""
        return Clicks(self.tumor[:n], self.background[:n])

    def added(self, name: str, point: Point) -> Clicks:
        """These clicks and one more of kind ``name`` ("tumor" or "background")."""
        if name == "tumor":
            return Clicks((*self.tumor, point), self.background)
        return Clicks(self.tumor, (*self.background, point))

    def __len__(self) -> int:
        return len(self.tumor) + len(self.background)


@dataclass(frozen=True)
class _RawPoint:
    name: str
    coords: tuple[float, ...]
    index: int  # 1-based position in the file, for messages


def _raw_points(data: Any, where: str) -> tuple[list[_RawPoint], str]:
    """The (name, coordinates) of every point of a parsed click file, and its space."""
    if not isinstance(data, dict):
        raise LionError(
            f"{where}: expected a JSON object with 'tumor'/'background' lists or a "
            f"Grand-Challenge 'points' list, found {type(data).__name__}"
        )
    space = data.get("space", "voxel")
    if space not in SPACES:
        raise LionError(f"{where}: 'space' is {space!r}; expected one of {', '.join(SPACES)}")
    points: list[_RawPoint] = []
    if "points" in data:  # Grand-Challenge form
        if data.get("type", GC_TYPE) != GC_TYPE:
            raise LionError(f"{where}: 'type' is {data['type']!r}; expected {GC_TYPE!r}")
        if not isinstance(data["points"], list):
            raise LionError(f"{where}: 'points' must be a list of {{'point', 'name'}} objects")
        for n, entry in enumerate(data["points"], start=1):
            if not isinstance(entry, dict) or "point" not in entry:
                raise LionError(
                    f"{where}: point {n} is {entry!r}; expected an object with "
                    "'point': [i, j, k] and 'name': 'tumor' or 'background'"
                )
            name = entry.get("name")
            if name not in NAMES:
                raise LionError(f"{where}: point {n} {entry['point']!r} has the unknown name "
                                f"{name!r}; expected 'tumor' or 'background'")  # fmt: skip
            points.append(_RawPoint(name, _coords(entry["point"], where, n), n))
        return points, space
    unknown = [key for key in data if key not in (*NAMES, "space", "version")]
    if unknown:
        raise LionError(f"{where}: unknown click name(s) {', '.join(map(repr, unknown))}; "
                        "expected 'tumor' and 'background' lists (or a Grand-Challenge "
                        "'points' list)")  # fmt: skip
    n = 0
    for name in NAMES:
        values = data.get(name, [])
        if not isinstance(values, list):
            raise LionError(f"{where}: {name!r} must be a list of [i, j, k] points")
        for value in values:
            n += 1
            points.append(_RawPoint(name, _coords(value, where, n), n))
    return points, space


def _coords(value: Any, where: str, n: int) -> tuple[float, ...]:
    ok = isinstance(value, list) and len(value) == 3
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or not all(math.isfinite(v) for v in value):
        raise LionError(f"{where}: point {n} is {value!r}; expected three numbers [i, j, k]")
    return tuple(value)


def parse_clicks(
    data: Any, where: str, shape_ijk: Sequence[int] | None = None, image: sitk.Image | None = None
) -> Clicks:
    """Clicks of a parsed click file (either form), checked against the image's grid.

    Args:
        data: The parsed JSON.
        where: The file name, for messages.
        shape_ijk: The image size (i, j, k) = nibabel's ``shape``; points outside are refused.
            None: taken from ``image`` when it is given.
        image: The PET image; needed for physical points ("space": "LPS"/"RAS"). Only its
            geometry is used, so a one-voxel stand-in with the PET's origin, spacing and
            direction serves, with the PET's size as ``shape_ijk``.

    Raises:
        LionError: one sentence naming the file and the point: a malformed point, an unknown
            name, a voxel index that is not whole, a point outside the image.
    """
    points, space = _raw_points(data, where)
    if image is not None and shape_ijk is None:
        shape_ijk = image.GetSize()
    if space != "voxel" and image is None:
        raise LionError(f"{where}: physical points (space {space}) need the PET image to map "
                        "them to voxels")  # fmt: skip
    tumor: list[Point] = []
    background: list[Point] = []
    for p in points:
        if space == "voxel":
            if any(v != int(v) for v in p.coords):
                raise LionError(
                    f"{where}: point {p.index} {list(p.coords)} ({p.name}) is not a whole voxel "
                    'index; give integers, or millimetres with "space": "LPS"'
                )
            ijk = tuple(int(v) for v in p.coords)
        else:
            lps = p.coords if space == "LPS" else (-p.coords[0], -p.coords[1], p.coords[2])
            continuous = image.TransformPhysicalPointToContinuousIndex(tuple(map(float, lps)))
            ijk = tuple(math.floor(v + 0.5) for v in continuous)
        if shape_ijk is not None and not all(
            0 <= v < s for v, s in zip(ijk, shape_ijk, strict=True)
        ):
            mm = "" if space == "voxel" else f" (voxel {list(ijk)})"
            raise LionError(
                f"{where}: point {p.index} {list(p.coords)}{mm} ({p.name}) lies outside the "
                f"image of {' x '.join(map(str, shape_ijk))} voxels (indices 0.."
                f"{', 0..'.join(str(s - 1) for s in shape_ijk)})"
            )
        (tumor if p.name == "tumor" else background).append(ijk)  # type: ignore[arg-type]
    return Clicks(tuple(tumor), tuple(background))


def read_clicks(
    path: str | Path, shape_ijk: Sequence[int] | None = None, image: sitk.Image | None = None
) -> Clicks:
    """Read a click file in either form; see :func:`parse_clicks` for the checks."""
    path = Path(path)
    if not path.is_file():
        raise LionError(f"{path}: click file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise LionError(f"{path}: not a valid JSON click file ({e})") from None
    return parse_clicks(data, str(path), shape_ijk, image)


def to_simple(clicks: Clicks) -> dict:
    """The simple form: ``{"tumor": [[i, j, k], ...], "background": [...]}``."""
    return {name: [list(p) for p in getattr(clicks, name)] for name in NAMES}


def to_gc(clicks: Clicks) -> dict:
    """The Grand-Challenge "Multiple points" form, tumor points first (as the toolkit writes)."""
    points = [{"point": list(p), "name": name} for name in NAMES for p in getattr(clicks, name)]
    return {"version": {"major": 1, "minor": 0}, "type": GC_TYPE, "points": points}


def write_clicks(clicks: Clicks, path: str | Path, form: str = "simple") -> Path:
    """Write a click file atomically in ``form`` ("simple" or "gc")."""
    if form not in FORMS:
        raise LionError(f"click file form {form!r}: expected one of {', '.join(FORMS)}")
    return write_json(to_simple(clicks) if form == "simple" else to_gc(clicks), path)
