"""Quantitative PET report of a tumor mask: TMTV, TLG, SUVmax/mean/peak, lesions.

Arrays are numpy (z, y, x) on the PET grid; spacings given to functions here are (z, y, x) mm.
Lesions are 18-connected components of the tumor mask (``cc3d``, faces + edges, no corners),
the convention of the autoPET evaluation script, so ``lesion_count`` agrees with ``lion evaluate``.

Keys of ``report.json`` (a stable interface, see docs/inference.md): ``case_id``, ``tmtv_ml``,
``tlg`` (SUV x ml: sum over lesions of SUVmean x volume in ml = sum of SUV x voxel volume),
``suv_max``, ``suv_mean``, ``suv_peak`` (highest mean SUV in a 1 ml sphere centred on a tumor
voxel, PERCIST), ``lesion_count``, ``lesions`` (list), ``model``, ``folds``, ``lion_version``,
``nnunetv2_version``, ``flag_score`` and ``flag_reasons`` (:mod:`.flags`). Each lesion carries
``suv_max_voxel`` (voxel index (i, j, k) of its hottest voxel, the click files' order),
``suv_max_lps_mm`` and ``suv_max_ras_mm`` (that voxel's centre in the image's physical LPS
coordinates, as ITK and DICOM, and in RAS, as nibabel and 3D Slicer show them), and
``confidence`` (mean ensemble tumor probability inside it, 0..1; null where no probabilities exist,
e.g. ``lion postprocess``) and ``fold_agreement`` (share of the ensemble's folds whose own tumor
prediction overlaps it; null with fewer than two folds).

Numbers are rounded to their precision (:data:`DECIMALS`): volumes to 0.001 ml, SUVs and TLG to
0.01, millimetres to 0.1; counts and label ids are integers; folds are integers (or ``"all"``),
as nnU-Net's ``-f`` takes them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version

import cc3d
import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from lion_nnunet import __version__
from lion_nnunet.inference.peak_sphere import peak, peak_means, sphere_weights

#: cc3d connectivity of lesions (18 = voxels sharing a face or an edge).
CONNECTIVITY = 18
#: Volume of the SUVpeak sphere in ml (PERCIST: 1 cm^3).
SUV_PEAK_ML = 1.0
#: Searched margins (mm) around a lesion for its nearest organ, widened until an organ is found.
ORGAN_SEARCH_MM = (20.0, 60.0, 200.0)
#: Above this many lesions, nearest organs come from one distance transform of the whole image.
MAX_LESIONS_PER_CROP = 20
#: Decimals kept per unit: ml, SUV, SUV x ml (TLG), mm.
DECIMALS = {"ml": 3, "suv": 2, "suv_ml": 2, "mm": 1, "share": 3}
#: Per-case measurements in summary.csv, then the provenance columns (see :func:`summary_frame`).
MEASUREMENTS = ("tmtv_ml", "tlg", "suv_max", "suv_mean", "suv_peak", "lesion_count")
SUMMARY_COLUMNS = (
    "case_id", *MEASUREMENTS, "flag_score", "flag_reasons", "model", "installed_model", "folds",
    "checkpoint", "checkpoint_sha256", "tta", "step_size", "min_volume_ml", "remove_in_organs",
    "suv_threshold", "device", "lion_version", "nnunetv2_version",
)  # fmt: skip
_UNITS = {"tmtv_ml": "ml", "volume_ml": "ml", "tlg": "suv_ml", "suv_max": "suv",
          "suv_mean": "suv", "suv_peak": "suv"}  # fmt: skip


def rounded(value: float | None, unit: str) -> float | None:
    """``value`` rounded to the precision of ``unit`` (a key of :data:`DECIMALS`); None stays."""
    return None if value is None else round(float(value), DECIMALS[unit])


def fold_value(fold: str | int) -> int | str:
    """A fold as nnU-Net's ``-f`` takes it: an int, or ``"all"``."""
    return int(fold) if str(fold).isdigit() else str(fold)


def nnunet_version() -> str:
    try:
        return version("nnunetv2")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"


def sphere_kernel(spacing_zyx: tuple[float, float, float], volume_ml: float = SUV_PEAK_ML):
    """Weights of a ``volume_ml`` sphere on a (z, y, x) mm grid: each voxel's share inside it,
    adding up to exactly ``volume_ml`` (:mod:`.peak_sphere`; read-only)."""
    return sphere_weights(spacing_zyx, volume_ml)


def suv_peak(
    suv: np.ndarray, mask: np.ndarray, spacing_zyx: tuple[float, float, float],
    volume_ml: float = SUV_PEAK_ML,
) -> float | None:  # fmt: skip
    """SUVpeak: the highest mean SUV of an exact ``volume_ml`` sphere (partial-voxel weights,
    :mod:`.peak_sphere`) centred on any voxel of ``mask``; the same sphere as ``lion response``'s
    SULpeak. Sphere voxels outside the image are left out of the mean. None for an empty mask.
    """
    if not mask.any():
        return None
    return peak(suv, mask, spacing_zyx, volume_ml)[0]


def _peak(
    suv: np.ndarray, mask_in_bbox: np.ndarray, bbox: tuple[slice, ...],
    spacing_zyx: tuple[float, float, float], volume_ml: float = SUV_PEAK_ML,
) -> float:  # fmt: skip
    """SUVpeak of a mask given as its bounding box ``bbox`` and the mask inside it."""
    half = [k // 2 for k in sphere_kernel(spacing_zyx, volume_ml).shape]
    lo = [max(0, b.start - h) for b, h in zip(bbox, half, strict=True)]
    hi = [min(n, b.stop + h) for b, h, n in zip(bbox, half, suv.shape, strict=True)]
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    mask = np.zeros(tuple(b - a for a, b in zip(lo, hi, strict=True)), bool)
    inner = tuple(slice(b.start - a, b.stop - a) for b, a in zip(bbox, lo, strict=True))
    mask[inner] = mask_in_bbox.astype(bool)
    return float(peak_means(suv[crop], mask, spacing_zyx, volume_ml).max())


def _grown(
    lesion: np.ndarray, bbox: tuple[slice, ...], shape: tuple[int, ...]
) -> tuple[np.ndarray, tuple[slice, ...]]:
    """The lesion grown by one voxel (26-neighbourhood: faces, edges and corners) and the box
    (``bbox`` one voxel larger, clipped to the image of ``shape``) that mask lies in."""
    near = tuple(
        slice(max(0, b.start - 1), min(n, b.stop + 1)) for b, n in zip(bbox, shape, strict=True)
    )
    grown = np.zeros(tuple(s.stop - s.start for s in near), bool)
    grown[tuple(slice(b.start - s.start, b.stop - s.start) for b, s in
                zip(bbox, near, strict=True))] = lesion  # fmt: skip
    return ndimage.binary_dilation(grown, structure=np.ones((3, 3, 3), bool)), near


def _touched(organs_near: np.ndarray, grown: np.ndarray) -> int | None:
    """The organ label with most voxels in the grown lesion (ties: the lowest label), or None
    when the lesion touches no organ."""
    touched = organs_near[grown]
    touched = touched[touched > 0].astype(np.int64)
    return int(np.bincount(touched).argmax()) if touched.size else None


def _name(label: int, names: Mapping[int, str]) -> str:
    return names.get(int(label), str(int(label)))


def _nearest_organ(
    lesion: np.ndarray, bbox: tuple[slice, ...], organs: np.ndarray,
    spacing_zyx: tuple[float, float, float], names: Mapping[int, str],
) -> tuple[str | None, float | None]:  # fmt: skip
    """(organ name, gap in mm) or (None, None) when no organ lies within ORGAN_SEARCH_MM[-1].

    Voxels are boxes. The gap between a lesion voxel ``l`` and an organ voxel ``o`` (indices
    (z, y, x), spacing ``s`` in mm) is the shortest distance between their boxes,
    ``sqrt(sum over axes a of (max(0, |l_a - o_a| - 1) * s_a)^2)``: 0 when they share a face, an
    edge or a corner. The reported gap is its minimum over all lesion and organ voxels. As
    ``max(0, |d| - 1) = min(|d - e| for e in (-1, 0, 1))`` for an integer ``d``, axis by axis,
    that minimum is the shortest centre-to-centre distance from the lesion grown by one voxel
    (26-neighbourhood) to an organ voxel: one Euclidean distance transform.

    A lesion touching organs (its grown mask overlaps them) is 0 mm from the one with most
    voxels in contact (ties: the lowest label id), the organ it shares most surface with.
    Otherwise the organ is the one of a closest organ voxel (any one among equally close).

    ``lesion`` is the lesion mask inside its bounding box ``bbox``; the organ map is searched in
    boxes ORGAN_SEARCH_MM larger, so the cost does not grow with the image.
    """
    grown, near = _grown(lesion, bbox, organs.shape)
    touching = _touched(organs[near], grown)
    if touching is not None:
        return _name(touching, names), 0.0
    for margin in ORGAN_SEARCH_MM:
        pad = [math.ceil(margin / s) for s in spacing_zyx]
        crop = tuple(
            slice(max(0, b.start - p), min(n, b.stop + p))
            for b, p, n in zip(near, pad, organs.shape, strict=True)
        )
        sub = organs[crop]
        if not sub.any():
            continue
        dist, idx = ndimage.distance_transform_edt(sub == 0, sampling=spacing_zyx,
                                                   return_indices=True)  # fmt: skip
        inner = tuple(
            slice(b.start - c.start, b.stop - c.start) for b, c in zip(near, crop, strict=True)
        )
        d = dist[inner][grown]
        k = int(np.argmin(d))
        if d[k] > margin:  # a nearer organ may lie outside this box: widen the search
            continue
        pos = tuple(int(i[inner][grown][k]) for i in idx)
        return _name(sub[pos], names), rounded(d[k], "mm")
    return None, None


def _organ_lookup(organs: np.ndarray, spacing_zyx, names: Mapping[int, str], n_lesions: int):
    """``f(lesion_in_bbox, bbox) -> (organ, mm)`` as :func:`_nearest_organ`: per-lesion crops
    for few lesions, else one distance transform of the whole organ map (bounded cost when a
    model predicts many)."""
    if n_lesions <= MAX_LESIONS_PER_CROP:
        return lambda lesion, bbox: _nearest_organ(lesion, bbox, organs, spacing_zyx, names)
    dist, idx = ndimage.distance_transform_edt(organs == 0, sampling=spacing_zyx,
                                               return_indices=True)  # fmt: skip

    def lookup(lesion: np.ndarray, bbox: tuple[slice, ...]) -> tuple[str | None, float | None]:
        grown, near = _grown(lesion, bbox, organs.shape)
        touching = _touched(organs[near], grown)
        if touching is not None:
            return _name(touching, names), 0.0
        d = dist[near][grown]
        k = int(np.argmin(d))
        if d[k] > ORGAN_SEARCH_MM[-1]:
            return None, None
        pos = tuple(int(i[near][grown][k]) for i in idx)
        return _name(organs[pos], names), rounded(d[k], "mm")

    return lookup


def case_report(
    case_id: str,
    suv: np.ndarray,
    tumor: np.ndarray,
    image: sitk.Image,
    organs: np.ndarray | None = None,
    organ_names: Mapping[int, str] | None = None,
    model: str | None = None,
    folds: list[str] | None = None,
    extra: Mapping | None = None,
    tumor_probability: np.ndarray | None = None,
    fold_tumors: Sequence[np.ndarray] | None = None,
) -> dict:
    """The report.json content of one case.

    Args:
        case_id: case name.
        suv: PET in SUV, numpy (z, y, x).
        tumor: binary tumor mask on the same grid, (z, y, x).
        image: the PET image (SimpleITK, gives spacing and voxel -> mm mapping for centroids).
        organs: optional organ label map (2..K) on the same grid, for ``nearest_organ``.
        organ_names: label id -> organ name.
        model, folds: what predicted the mask (None for masks from elsewhere).
        extra: more keys to store (e.g. input file names).
        tumor_probability: the ensemble's tumor probability (0..1, z, y, x) or None; gives each
            lesion's ``confidence`` (mean inside the lesion).
        fold_tumors: each fold's own tumor mask (z, y, x); with two or more, each lesion's
            ``fold_agreement`` is the share of them that overlap it (else null).

    Returns:
        Dict with the keys listed in the module docstring; SUV values in SUV (g/ml), volumes in ml,
        centroids in mm (physical LPS coordinates of the image, x, y, z).
    """
    spacing_zyx = tuple(float(s) for s in image.GetSpacing()[::-1])
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    tumor = np.asarray(tumor) > 0
    suv = np.asarray(suv)  # kept as is (float32): sums below are taken in float64
    labels, n = cc3d.connected_components(tumor.astype(np.uint8), connectivity=CONNECTIVITY,
                                          return_N=True)  # fmt: skip
    lesions = []
    if n:
        stats = cc3d.statistics(labels)
        nearest_map = None
        if organs is not None and np.any(organs):
            nearest_map = _organ_lookup(organs, spacing_zyx, organ_names or {}, n)
        for i in range(1, n + 1):
            bbox = stats["bounding_boxes"][i]
            lesion = labels[bbox] == i
            count = int(stats["voxel_counts"][i])
            # this lesion's SUVs, from its bounding-box crop (not the whole volume)
            values = suv[bbox][lesion].astype(np.float64)
            total_i = float(values.sum())
            # the SUVmax voxel (first in C order of (z, y, x) among equal maxima)
            hottest = np.where(lesion, suv[bbox], -np.inf).argmax()
            at_zyx = [int(s.start + v) for s, v in
                      zip(bbox, np.unravel_index(hottest, lesion.shape), strict=True)]  # fmt: skip
            at_lps = image.TransformIndexToPhysicalPoint(at_zyx[::-1])
            c_zyx = stats["centroids"][i]
            centroid = image.TransformContinuousIndexToPhysicalPoint(
                [float(c) for c in c_zyx[::-1]]
            )
            nearest, dist = (None, None)
            if nearest_map is not None:
                nearest, dist = nearest_map(lesion, bbox)
            confidence, agreement = None, None
            if tumor_probability is not None:
                confidence = float(tumor_probability[bbox][lesion].astype(np.float64).mean())
            if fold_tumors is not None and len(fold_tumors) >= 2:
                hits = [bool(np.any(np.asarray(f)[bbox][lesion])) for f in fold_tumors]
                agreement = sum(hits) / len(hits)
            lesions.append(
                {
                    "lesion_id": i,
                    "volume_ml": rounded(count * voxel_ml, "ml"),
                    "suv_max": rounded(values.max(), "suv"),
                    "suv_mean": rounded(total_i / count, "suv"),
                    "suv_peak": rounded(_peak(suv, lesion, bbox, spacing_zyx), "suv"),
                    "tlg": rounded(total_i * voxel_ml, "suv_ml"),
                    "centroid_mm": [rounded(c, "mm") for c in centroid],
                    "suv_max_voxel": at_zyx[::-1],
                    "suv_max_lps_mm": [rounded(c, "mm") for c in at_lps],
                    "suv_max_ras_mm": [
                        rounded(-at_lps[0], "mm"),
                        rounded(-at_lps[1], "mm"),
                        rounded(at_lps[2], "mm"),
                    ],
                    "nearest_organ": nearest,
                    "distance_to_organ_mm": dist,
                    "confidence": rounded(confidence, "share"),
                    "fold_agreement": rounded(agreement, "share"),
                }
            )
    count = int(tumor.sum())
    inside = suv[tumor].astype(np.float64)
    total = float(inside.sum()) if count else 0.0
    report = {
        "case_id": case_id,
        "tmtv_ml": rounded(count * voxel_ml, "ml"),
        "tlg": rounded(total * voxel_ml, "suv_ml"),
        "suv_max": rounded(inside.max(), "suv") if count else None,
        "suv_mean": rounded(total / count, "suv") if count else None,
        # the case's SUVpeak is its best lesion's: every tumor voxel belongs to one lesion
        "suv_peak": max((les["suv_peak"] for les in lesions), default=None),
        "lesion_count": int(n),
        "lesions": lesions,
        "model": model,
        "folds": [fold_value(f) for f in folds] if folds is not None else None,
        "lion_version": __version__,
        "nnunetv2_version": nnunet_version(),
        "connectivity": CONNECTIVITY,
        "suv_peak_sphere_ml": SUV_PEAK_ML,
        "voxel_volume_ml": float(f"{voxel_ml:.6g}"),
        "spacing_mm": [float(f"{s:.6g}") for s in image.GetSpacing()],
    }
    if extra:
        report.update(extra)
    return report


def lesion_map(tumor: np.ndarray) -> np.ndarray:
    """The lesions of a tumor mask as one label map: voxel value = ``lesion_id`` of
    :func:`case_report` (the same 18-connected components, numbered the same way), 0 elsewhere.

    Same axis order as ``tumor``; uint16 (uint32 above 65,535 lesions).

    Examples:
        >>> m = np.zeros((1, 3, 5), np.uint8); m[0, 1, 0] = m[0, 1, 3] = m[0, 1, 4] = 1
        >>> lesion_map(m)[0, 1].tolist()
        [1, 0, 0, 2, 2]
    """
    labels, n = cc3d.connected_components((np.asarray(tumor) > 0).astype(np.uint8),
                                          connectivity=CONNECTIVITY, return_N=True)  # fmt: skip
    return labels.astype(np.uint16 if n < 2**16 else np.uint32)


def summary_frame(reports: list[dict]) -> pd.DataFrame:
    """One row per case (SUMMARY_COLUMNS): measurements rounded, provenance from ``settings``.

    ``folds`` and ``remove_in_organs`` are joined with spaces, ``checkpoint_sha256`` as
    ``fold:sum`` pairs; ``lesion_count`` is an integer column. Reports written before the TLG
    key was renamed (``tlg_ml``) are read too.
    """
    rows = []
    for r in reports:
        settings = r.get("settings") or {}
        row = {k: r.get(k) for k in SUMMARY_COLUMNS}
        if row["tlg"] is None and "tlg_ml" in r:  # a report written before the rename
            row["tlg"] = r["tlg_ml"]
        for key in MEASUREMENTS[:-1]:
            row[key] = rounded(row[key], _UNITS[key])
        row["folds"] = " ".join(str(f) for f in r.get("folds") or [])
        row["flag_reasons"] = "; ".join(r.get("flag_reasons") or [])
        sums = r.get("checkpoint_sha256") or {}
        row["checkpoint_sha256"] = " ".join(f"{f}:{h}" for f, h in sums.items())
        row["tta"] = settings.get("use_mirroring")
        row["step_size"] = settings.get("tile_step_size")
        for key in ("min_volume_ml", "suv_threshold"):
            row[key] = settings.get(key, r.get(key))
        row["remove_in_organs"] = " ".join(settings.get("remove_in_organs") or [])
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    frame["lesion_count"] = frame["lesion_count"].astype("Int64")
    return frame
