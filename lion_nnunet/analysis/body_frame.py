"""An anatomical body frame: map voxel positions of any patient into one canonical body.

Tumor Occurrence Maps (TOMs) need every case's tumors in the same coordinates. The raw image box
is not anatomical (field of view, patient height and position vary), so each case is mapped into
a **canonical body** of a standard 1750 mm adult, in millimetres, LPS like SimpleITK: ``x`` towards
the patient's left, ``y`` posterior, ``z`` height above the soles (vertex at 1750 mm).

* **Body axis (z)**: the centroids of the organ classes already in LION label maps are landmarks
  with fixed canonical heights (:data:`LANDMARK_HEIGHT_MM`: brain, salivary glands, heart, liver,
  kidneys, urinary bladder). Physical z is mapped to canonical z piecewise-linearly between the
  landmarks present, and linearly beyond the outermost ones with the overall slope. Landmarks out
  of anatomical order are dropped (longest ordered subset kept). Fallbacks, reported per case:
  one landmark -> shift to it, slope from the body's lateral size; no landmark -> the top of the
  body outline is the vertex, same slope.
* **Across the body (x, y)**: from the body outline (a PET threshold, or the union of labels), each
  axial slice is centred on the middle of its outline (so a shifted or bent patient lines up) and
  scaled by one per-case factor per axis: canonical trunk half-width (170 mm) and half-depth
  (110 mm) over the patient's median trunk half-extents.

Limits: arms beside the trunk widen the measured trunk; oblique acquisitions are handled only up
to axis flips and permutations (``sitk.DICOMOrient``); organ segmentation errors move landmarks.

Array axis order: label and PET arrays here are numpy (z, y, x) after reorientation to LPS; point
arrays are (N, 3) in (x, y, z) order, in mm.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter, median_filter

from lion_nnunet.errors import LionError

log = logging.getLogger(__name__)

VERTEX_MM = 1750.0
#: Canonical heights (mm above the soles) of organ-class centroids in a standard 1750 mm adult.
LANDMARK_HEIGHT_MM: dict[str, float] = {
    "brain": 1650.0,
    "salivary_glands": 1550.0,
    "heart": 1235.0,
    "liver": 1125.0,
    "kidneys": 1050.0,
    "urinary_bladder": 865.0,
}
CANON_HALF_WIDTH_MM = 170.0
CANON_HALF_DEPTH_MM = 110.0
#: Canonical heights of the trunk (pelvis to shoulders), where the lateral scale is measured.
TRUNK_MM = (880.0, 1450.0)
#: Organs smaller than this many voxels are not trusted as landmarks.
MIN_LANDMARK_VOXELS = 3
#: Plausible canonical-per-physical mm slopes along the body axis (adults and children).
PLAUSIBLE_SLOPE = (0.4, 3.0)


@dataclass(frozen=True)
class FrameGrid:
    """The fixed TOM grid over the canonical body.

    Args:
        shape_xyz: number of bins along x (left-right), y (anterior-posterior), z (body axis).
        lo_mm / hi_mm: the canonical box covered, (x, y, z) mm.
    """

    shape_xyz: tuple[int, int, int] = (64, 32, 128)
    lo_mm: tuple[float, float, float] = (-255.0, -165.0, 0.0)
    hi_mm: tuple[float, float, float] = (255.0, 165.0, 1800.0)

    def __post_init__(self) -> None:
        if len(self.shape_xyz) != 3 or min(self.shape_xyz) < 2:
            raise LionError(f"--grid needs three sizes >= 2 (x y z bins), got {self.shape_xyz}")

    @property
    def bin_mm(self) -> np.ndarray:
        """Bin size (x, y, z) in canonical mm."""
        return (np.array(self.hi_mm) - np.array(self.lo_mm)) / np.array(self.shape_xyz)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape_xyz))

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.shape_xyz[::-1])  # type: ignore[return-value]

    def flat_bins(self, points_xyz: np.ndarray) -> tuple[np.ndarray, int]:
        """Flat (z, y, x) C-order bin index of each canonical point inside the grid.

        Returns the unique flat indices hit and the number of points outside the grid.
        """
        ijk = np.floor((points_xyz - np.array(self.lo_mm)) / self.bin_mm).astype(np.int64)
        inside = np.all((ijk >= 0) & (ijk < np.array(self.shape_xyz)), axis=1)
        ijk = ijk[inside]
        nx, ny, _ = self.shape_xyz
        flat = (ijk[:, 2] * ny + ijk[:, 1]) * nx + ijk[:, 0]
        return np.unique(flat), int((~inside).sum())

    def to_image(self, values_zyx: np.ndarray) -> sitk.Image:
        """A (z, y, x) array on this grid as an image in canonical mm (identity direction)."""
        image = sitk.GetImageFromArray(values_zyx.reshape(self.shape_zyx))
        image.SetSpacing(tuple(float(s) for s in self.bin_mm))
        centres = np.array(self.lo_mm) + self.bin_mm / 2
        image.SetOrigin(tuple(float(c) for c in centres))
        return image


@dataclass
class BodyFrame:
    """One case's mapping from voxel indices to canonical mm (see the module docstring)."""

    spacing_xyz: np.ndarray
    origin_xyz: np.ndarray
    z_phys: np.ndarray  # landmark physical z (mm), increasing
    z_canon: np.ndarray  # their canonical heights
    slope_z: float  # canonical mm per physical mm beyond the landmarks
    center_x: np.ndarray  # per slice (z index), physical mm
    center_y: np.ndarray
    scale_x: float  # canonical mm per physical mm
    scale_y: float
    z_method: str
    landmarks: tuple[str, ...] = field(default_factory=tuple)

    def canonical_z(self, z_mm: np.ndarray) -> np.ndarray:
        """Canonical height (mm) of physical z positions (mm)."""
        z_mm = np.asarray(z_mm, dtype=float)
        if len(self.z_phys) >= 2:
            out = np.interp(z_mm, self.z_phys, self.z_canon)
            below, above = z_mm < self.z_phys[0], z_mm > self.z_phys[-1]
            out[below] = self.z_canon[0] + (z_mm[below] - self.z_phys[0]) * self.slope_z
            out[above] = self.z_canon[-1] + (z_mm[above] - self.z_phys[-1]) * self.slope_z
            return out
        return self.z_canon[0] + (z_mm - self.z_phys[0]) * self.slope_z

    def to_canonical(self, idx_zyx: np.ndarray) -> np.ndarray:
        """Canonical (x, y, z) mm of (N, 3) voxel indices in numpy (z, y, x) order (may be
        fractional)."""
        idx_zyx = np.asarray(idx_zyx, dtype=float)
        phys = self.origin_xyz + idx_zyx[:, ::-1] * self.spacing_xyz
        slices = np.arange(len(self.center_x))
        cx = np.interp(idx_zyx[:, 0], slices, self.center_x)
        cy = np.interp(idx_zyx[:, 0], slices, self.center_y)
        return np.stack(
            [
                (phys[:, 0] - cx) * self.scale_x,
                (phys[:, 1] - cy) * self.scale_y,
                self.canonical_z(phys[:, 2]),
            ],
            axis=1,
        )

    def voxel_canon_mm(self) -> np.ndarray:
        """Approximate size (x, y, z) of one voxel in canonical mm."""
        return self.spacing_xyz * np.array([self.scale_x, self.scale_y, self.slope_z])


def orient_lps(image: sitk.Image) -> sitk.Image:
    """Permute/flip axes (no resampling) so numpy (z, y, x) runs superior, posterior, left."""
    return sitk.DICOMOrient(image, "LPS")


def body_mask_from_pet(pet_zyx: np.ndarray, threshold_suv: float) -> np.ndarray:
    """Body outline from PET (SUV, numpy z, y, x): smoothed (1 voxel) > threshold, largest
    component."""
    mask = gaussian_filter(np.nan_to_num(pet_zyx.astype(np.float32)), 1.0) > threshold_suv
    if not mask.any():
        return mask
    return cc3d.largest_k(mask, k=1, connectivity=26).astype(bool)


def _longest_ordered(z_phys: list[float]) -> list[int]:
    """Indices of the longest subsequence with strictly increasing values (inputs are few)."""
    n = len(z_phys)
    best = [[i] for i in range(n)]
    for i in range(n):
        for j in range(i):
            if z_phys[j] < z_phys[i] and len(best[j]) + 1 > len(best[i]):
                best[i] = best[j] + [i]
    return max(best, key=len) if best else []


def _slice_outline(body: np.ndarray, spacing: np.ndarray, origin: np.ndarray) -> tuple:
    """Per-slice centres (mm, smoothed, gaps filled) and half-extents (mm, NaN where empty)."""
    out = []
    for axis_xyz, proj_axis in ((0, 1), (1, 2)):  # x: reduce y; y: reduce x
        rows = body.any(axis=proj_axis)  # (z, n)
        n = rows.shape[1]
        has = rows.any(axis=1)
        lo = np.argmax(rows, axis=1).astype(float)
        hi = (n - 1 - np.argmax(rows[:, ::-1], axis=1)).astype(float)
        lo_mm = origin[axis_xyz] + lo * spacing[axis_xyz]
        hi_mm = origin[axis_xyz] + hi * spacing[axis_xyz]
        center = np.where(has, (lo_mm + hi_mm) / 2, np.nan)
        half = np.where(has, (hi_mm - lo_mm + spacing[axis_xyz]) / 2, np.nan)
        z = np.arange(len(has))
        if has.any():
            smooth = median_filter(center[has], size=5, mode="nearest")
            center = np.interp(z, z[has], smooth)
        else:
            center = np.full(len(has), origin[axis_xyz] + spacing[axis_xyz] * (n - 1) / 2)
        out += [center, half]
    return tuple(out)


def fit_body_frame(
    labels_zyx: np.ndarray,
    spacing_xyz: tuple[float, float, float],
    origin_xyz: tuple[float, float, float],
    landmark_labels: Mapping[str, int],
    body_zyx: np.ndarray,
) -> BodyFrame:
    """Fit one case's body frame.

    Args:
        labels_zyx: LION label map (numpy z, y, x; LPS-oriented, see :func:`orient_lps`).
        spacing_xyz / origin_xyz: its grid in mm (SimpleITK x, y, z order).
        landmark_labels: organ name -> label id for the organs of :data:`LANDMARK_HEIGHT_MM`
            present in the dataset's label set.
        body_zyx: boolean body outline on the same grid.
    """
    spacing, origin = np.asarray(spacing_xyz, float), np.asarray(origin_xyz, float)
    cx, half_x, cy, half_y = _slice_outline(body_zyx, spacing, origin)
    stats = cc3d.statistics(np.ascontiguousarray(labels_zyx))
    found = []
    counts = stats["voxel_counts"]
    for name, label in landmark_labels.items():
        usable = label < len(counts) and counts[label] >= MIN_LANDMARK_VOXELS
        if name in LANDMARK_HEIGHT_MM and usable:
            z_idx = stats["centroids"][label][0]
            found.append((LANDMARK_HEIGHT_MM[name], origin[2] + z_idx * spacing[2], name))
    found.sort()
    keep = _longest_ordered([z for _, z, _ in found])
    if len(keep) < len(found):
        dropped = sorted({n for _, _, n in found} - {found[i][2] for i in keep})
        log.warning("landmarks out of anatomical order, dropped: %s", ", ".join(dropped))
    found = [found[i] for i in keep]
    z_canon = np.array([c for c, _, _ in found], float)
    z_phys = np.array([z for _, z, _ in found], float)
    names = tuple(n for _, _, n in found)

    # Lateral scale: median trunk half-extents; before the z mapping is known, the widest
    # quarter of the body slices stands in for the trunk.
    def lateral(half: np.ndarray, trunk: np.ndarray | None) -> float:
        values = half[trunk & ~np.isnan(half)] if trunk is not None else np.array([])
        if values.size == 0:
            values = half[~np.isnan(half)]
            return float(np.percentile(values, 75)) if values.size else np.nan
        return float(np.median(values))

    size_slope = CANON_HALF_WIDTH_MM / lateral(half_x, None)
    if len(found) >= 2:
        slope = float((z_canon[-1] - z_canon[0]) / (z_phys[-1] - z_phys[0]))
        method = "landmarks"
        if not PLAUSIBLE_SLOPE[0] <= slope <= PLAUSIBLE_SLOPE[1]:
            log.warning(
                "implausible body-axis scale %.2f from landmarks %s", slope, ", ".join(names)
            )
    elif len(found) == 1:
        slope, method = size_slope, "one-landmark"
    else:
        top = np.nonzero(body_zyx.any(axis=(1, 2)))[0]
        if top.size == 0:
            raise LionError("no body outline found (empty PET threshold and label map)")
        z_phys = np.array([origin[2] + top[-1] * spacing[2]])
        z_canon = np.array([VERTEX_MM])
        slope, method = size_slope, "body-top"
    if not np.isfinite(slope) or slope <= 0:
        slope = 1.0
    frame = BodyFrame(spacing, origin, z_phys, z_canon, slope, cx, cy, 1.0, 1.0, method, names)
    slice_canon = frame.canonical_z(origin[2] + np.arange(len(cx)) * spacing[2])
    trunk = (slice_canon >= TRUNK_MM[0]) & (slice_canon <= TRUNK_MM[1])
    wx, wy = lateral(half_x, trunk), lateral(half_y, trunk)
    frame.scale_x = CANON_HALF_WIDTH_MM / wx if np.isfinite(wx) and wx > 0 else 1.0
    frame.scale_y = CANON_HALF_DEPTH_MM / wy if np.isfinite(wy) and wy > 0 else 1.0
    return frame


def sample_points(mask_zyx: np.ndarray, frame: BodyFrame, grid: FrameGrid) -> np.ndarray:
    """Canonical (x, y, z) mm points standing for the voxels of a mask, at about bin density.

    Voxels larger than a bin are represented by k points per axis (sub-voxel offsets, k <= 4) so
    the map has no holes; voxels much smaller than a bin are thinned with a stride per axis so the
    body outline stays cheap.
    """
    ratio = frame.voxel_canon_mm()[::-1] / grid.bin_mm[::-1]  # (z, y, x)
    stride = np.maximum(1, np.floor(1.0 / np.maximum(ratio, 1e-6))).astype(int)
    sub = np.clip(np.ceil(ratio), 1, 4).astype(int)
    view = mask_zyx[:: stride[0], :: stride[1], :: stride[2]]
    idx = np.argwhere(view).astype(float) * stride
    if idx.size == 0:
        return np.zeros((0, 3))
    offsets = np.stack(
        np.meshgrid(*[(np.arange(k) + 0.5) / k - 0.5 for k in sub], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    points = (idx[:, None, :] + offsets[None, :, :]).reshape(-1, 3)
    return frame.to_canonical(points)
