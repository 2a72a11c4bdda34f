"""Tumor Occurrence Maps (TOMs): where the tumors of a training set lie, in one body frame.

Every case's tumor mask (label 1 of a LION label map) is mapped voxel by voxel into the canonical
body of :mod:`lion_nnunet.analysis.body_frame` and binned on a fixed grid; a set's TOM counts, per
grid bin, the cases with tumor there. Nothing is resampled: only tumor (and thinned body) voxel
coordinates are mapped, and counts are accumulated with ``np.bincount``.

Diversity measures per set (all on the *body grid*: the bins inside the body outline of at least
half of all cases in the run, so every set is measured against the same region):

* ``coverage``: fraction of body-grid bins with tumor in >= 1 case.
* ``entropy``: Shannon entropy of the occurrence distribution over the body grid, divided by
  log(body-grid size): 0 = all in one bin, 1 = uniform over the body. The distribution is the TOM
  smoothed with a Gaussian of ``smooth_mm`` (default 30 mm, about a lymph-node station) and
  normalized to sum 1: a density estimate of where tumors occur. Unsmoothed, the entropy of a few
  dozen lesions mostly counts the bins they fill, i.e. tumor burden, not spread.
* ``lesion_spread_mm``: mean pairwise distance between lesion centroids (canonical mm): how far
  apart the set's lesions are, nearly independent of the number of lesions.
* ``regions_hit``: number of the 15 body regions (5 levels x right/midline/left) with a lesion.

Coverage and entropy grow with the number of cases, so each measure is also reported on equal-size
subsets (``*_matched``): the mean over ``repeats`` random subsets of ``match_size`` cases.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import cc3d
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import pdist

from lion_nnunet.analysis.body_frame import (
    LANDMARK_HEIGHT_MM,
    FrameGrid,
    body_mask_from_pet,
    fit_body_frame,
    orient_lps,
    sample_points,
)
from lion_nnunet.errors import LionError
from lion_nnunet.io import image_to_array, read_image, write_csv, write_image, write_json
from lion_nnunet.labels import TUMOR_LABEL
from lion_nnunet.progress import parallel_map

log = logging.getLogger(__name__)

FRAME_VERSION = "1"
LESION_CONNECTIVITY = 18  # as the autoPET evaluation
#: Body levels (canonical mm above the soles) and lateral thirds for ``regions_hit``.
LEVELS_MM = (780.0, 950.0, 1180.0, 1450.0)  # legs | pelvis | abdomen | thorax | head and neck
MIDLINE_MM = 40.0
MEASURES = ("coverage", "entropy", "lesion_spread_mm", "regions_hit")


@dataclass
class CaseJob:
    """One case to map: its LION label map, PET (optional) and landmark label ids."""

    case_id: str
    labels: str
    pet: str | None
    landmark_labels: dict[str, int]
    body_suv: float
    grid: tuple
    cache: str


@dataclass
class CaseMap:
    """A case in the TOM grid: the bins its tumor and body occupy, its lesions and frame."""

    case_id: str
    tumor_bins: np.ndarray
    body_bins: np.ndarray
    lesions_mm: np.ndarray  # (L, 3) canonical (x, y, z) centroids
    lesion_ml: np.ndarray
    info: dict


def _signature(job: CaseJob) -> str:
    parts = [FRAME_VERSION, json.dumps(asdict(job) | {"cache": ""}, sort_keys=True)]
    for f in (job.labels, job.pet):
        if f:
            st = Path(f).stat()
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha1("|".join(parts).encode()).hexdigest()


def map_case(job: CaseJob) -> CaseMap:
    """Map one case into the TOM grid (cached in ``job.cache`` keyed by inputs and settings)."""
    signature = _signature(job)
    cache = Path(job.cache)
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            if str(z["signature"]) == signature:
                return CaseMap(
                    job.case_id, z["tumor_bins"], z["body_bins"], z["lesions_mm"],
                    z["lesion_ml"], json.loads(str(z["info"])),
                )  # fmt: skip
    grid = FrameGrid(*job.grid)
    label_img = orient_lps(read_image(job.labels, "label map"))
    labels = image_to_array(label_img)
    spacing, origin = label_img.GetSpacing(), label_img.GetOrigin()
    outline = "labels"
    body = labels > 0
    if job.pet:
        pet_img = orient_lps(read_image(job.pet, "PET"))
        if pet_img.GetSize() != label_img.GetSize():
            raise LionError(
                f"{job.pet}: PET size {pet_img.GetSize()} differs from label map "
                f"{label_img.GetSize()} ({job.labels}); use the images of the same dataset"
            )
        pet_body = body_mask_from_pet(image_to_array(pet_img), job.body_suv)
        if pet_body.any():
            body, outline = pet_body | body, "pet"
    frame = fit_body_frame(labels, spacing, origin, job.landmark_labels, body)
    tumor = labels == TUMOR_LABEL
    tumor_bins, outside = grid.flat_bins(sample_points(tumor, frame, grid))
    body_bins, _ = grid.flat_bins(sample_points(body, frame, grid))
    components = cc3d.connected_components(tumor, connectivity=LESION_CONNECTIVITY)
    stats = cc3d.statistics(components)
    lesion_idx = np.asarray(stats["centroids"])[1:]
    voxel_ml = float(np.prod(spacing)) / 1000.0
    lesion_ml = np.asarray(stats["voxel_counts"])[1:] * voxel_ml
    lesions_mm = frame.to_canonical(lesion_idx) if len(lesion_idx) else np.zeros((0, 3))
    info = {
        "case_id": job.case_id,
        "z_method": frame.z_method,
        "landmarks": " ".join(frame.landmarks),
        "outline": outline,
        "scale_z": round(frame.slope_z, 4),
        "scale_x": round(frame.scale_x, 4),
        "scale_y": round(frame.scale_y, 4),
        "tumor_voxels": int(tumor.sum()),
        "tumor_ml": round(float(tumor.sum()) * voxel_ml, 3),
        "tumor_points_outside_grid": outside,
        "n_lesions": len(lesion_idx),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(cache.name + ".part.npz")
    np.savez(
        tmp, signature=signature, tumor_bins=tumor_bins, body_bins=body_bins,
        lesions_mm=lesions_mm, lesion_ml=lesion_ml, info=json.dumps(info),
    )  # fmt: skip
    tmp.replace(cache)
    return CaseMap(job.case_id, tumor_bins, body_bins, lesions_mm, lesion_ml, info)


# --------------------------------------------------------------------------- sets


def sets_from_columns(cases: pd.DataFrame, group_by: Sequence[str], where: str) -> dict:
    """``{"col=value": [case ids]}`` for every grouping column of a cases table."""
    out: dict[str, list[str]] = {}
    for col in group_by:
        if col not in cases.columns:
            raise LionError(
                f"{where}: no column {col!r} to group by (columns: {', '.join(cases.columns)})"
            )
        for value, rows in cases.groupby(cases[col].fillna("").astype(str), sort=True):
            out[f"{col}={value}"] = rows["case_id"].astype(str).tolist()
    return out


def sets_from_splits(path: Path) -> dict[str, list[str]]:
    """Training sets from a ``lion splits`` table (long format: fold, subset_size, role, case_id,
    disease): the ``role == "train"`` rows of every (fold, subset_size, ...) combination.

    Columns other than case_id, role and disease (e.g. an experiment name) also tell sets apart;
    the set is named ``fold=0;subset_size=20``.
    """
    frame = _read_table(path, "splits table", ("case_id", "role"))
    keys = [c for c in frame.columns if c not in ("case_id", "role", "disease")]
    if not keys:
        raise LionError(f"{path}: splits table has no fold/subset_size column")
    train = frame[frame["role"].astype(str) == "train"]
    out = {}
    for values, rows in train.groupby(keys, sort=True):
        values = values if isinstance(values, tuple) else (values,)
        name = ";".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))
        out[name] = rows["case_id"].astype(str).tolist()
    return out


def sets_from_table(path: Path) -> dict[str, list[str]]:
    """Named sets from a long table with columns ``set, case_id`` (one row per member)."""
    frame = _read_table(path, "sets table", ("set", "case_id"))
    return {
        str(k): rows["case_id"].astype(str).tolist() for k, rows in frame.groupby("set", sort=True)
    }


def _read_table(path: Path, what: str, required: Sequence[str]) -> pd.DataFrame:
    if not Path(path).is_file():
        raise LionError(f"{path}: {what} not found")
    frame = pd.read_csv(path, dtype=str).fillna("")
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise LionError(
            f"{path}: {what} lacks column(s) {', '.join(missing)} "
            f"(columns: {', '.join(frame.columns)})"
        )
    return frame


# --------------------------------------------------------------------------- measures


def body_grid(maps: Sequence[CaseMap], grid: FrameGrid) -> np.ndarray:
    """Flat bins inside the body outline of at least half of the cases."""
    counts = np.bincount(np.concatenate([m.body_bins for m in maps]), minlength=grid.size)
    return np.flatnonzero(counts >= max(1, len(maps) / 2))


def occurrence(maps: Sequence[CaseMap], grid: FrameGrid) -> np.ndarray:
    """The TOM: number of cases with tumor per flat bin."""
    bins = [m.tumor_bins for m in maps if m.tumor_bins.size]
    if not bins:
        return np.zeros(grid.size, dtype=np.int64)
    return np.bincount(np.concatenate(bins), minlength=grid.size)


def _region_ids(points: np.ndarray) -> np.ndarray:
    level = np.searchsorted(LEVELS_MM, points[:, 2])
    side = np.where(points[:, 0] < -MIDLINE_MM, 0, np.where(points[:, 0] > MIDLINE_MM, 2, 1))
    return level * 3 + side


def diversity(
    maps: Sequence[CaseMap], grid: FrameGrid, body: np.ndarray, smooth_mm: float = 30.0
) -> dict[str, float]:
    """Coverage, normalized entropy, lesion spread (mm) and regions hit of one set."""
    full = occurrence(maps, grid)
    tom = full[body]
    density = full.reshape(grid.shape_zyx).astype(float)
    if smooth_mm > 0:
        density = gaussian_filter(density, smooth_mm / grid.bin_mm[::-1], mode="constant")
    density = density.ravel()[body]
    total = density.sum()
    p = density[density > 0] / total if total > 0 else np.zeros(0)
    lesions = np.concatenate([m.lesions_mm for m in maps]) if maps else np.zeros((0, 3))
    return {
        "coverage": float((tom > 0).mean()) if body.size else float("nan"),
        "entropy": max(0.0, float(-(p * np.log(p)).sum() / np.log(max(2, body.size)))),
        "lesion_spread_mm": float(pdist(lesions).mean()) if len(lesions) >= 2 else float("nan"),
        "regions_hit": float(np.unique(_region_ids(lesions)).size) if len(lesions) else 0.0,
    }


def matched_diversity(
    maps: Sequence[CaseMap],
    grid: FrameGrid,
    body: np.ndarray,
    size: int,
    repeats: int,
    rng: np.random.Generator,
    smooth_mm: float = 30.0,
) -> dict[str, float]:
    """Mean diversity over ``repeats`` random subsets of ``size`` cases (NaN if too few)."""
    if len(maps) < size or size < 1:
        return {m: float("nan") for m in MEASURES}
    if len(maps) == size:
        return diversity(maps, grid, body, smooth_mm)
    rows = [
        diversity(
            [maps[i] for i in rng.choice(len(maps), size, replace=False)], grid, body, smooth_mm
        )
        for _ in range(repeats)
    ]
    return {m: float(np.nanmean([r[m] for r in rows])) if rows else np.nan for m in MEASURES}


def diversity_table(
    sets: Mapping[str, Sequence[str]],
    maps: Mapping[str, CaseMap],
    grid: FrameGrid,
    body: np.ndarray,
    match_size: int | None,
    repeats: int,
    seed: int,
    smooth_mm: float = 30.0,
) -> pd.DataFrame:
    """One row per set: counts, the measures on the whole set and on equal-size subsets."""
    sizes = [len(v) for v in sets.values() if len(v) >= 2]
    size = int(match_size) if match_size else (min(sizes) if sizes else 1)
    rows = []
    for i, (name, ids) in enumerate(sets.items()):
        members = [maps[c] for c in ids]
        row = {
            "set": name,
            "n_cases": len(members),
            "n_cases_with_tumor": sum(m.tumor_bins.size > 0 for m in members),
            "n_lesions": sum(len(m.lesions_mm) for m in members),
            "tumor_volume_ml": round(sum(float(m.lesion_ml.sum()) for m in members), 3),
            **diversity(members, grid, body, smooth_mm),
            "match_size": size,
        }
        rng = np.random.default_rng([seed, i])
        matched = matched_diversity(members, grid, body, size, repeats, rng, smooth_mm)
        row.update({f"{k}_matched": v for k, v in matched.items()})
        rows.append(row)
    return pd.DataFrame(rows)


def file_stem(set_name: str) -> str:
    """A file name for a set: ``disease=lymphoma`` -> ``disease-lymphoma``."""
    stem = set_name.replace("=", "-").replace(";", "_")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)


@dataclass
class TomResult:
    out_dir: Path
    diversity: pd.DataFrame
    frames: pd.DataFrame


def run_tom(
    cases: Sequence[tuple[str, Path, Path | None]],
    sets: Mapping[str, Sequence[str]],
    landmark_labels: Mapping[str, int],
    out_dir: str | Path,
    grid: FrameGrid | None = None,
    body_suv: float = 0.3,
    smooth_mm: float = 30.0,
    match_size: int | None = None,
    repeats: int = 20,
    seed: int = 0,
    num_processes: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> TomResult:
    """Map cases, build one TOM per set, and write maps, pictures and the diversity table.

    Args:
        cases: (case_id, label map, PET or None) per case; label maps are LION label maps.
        sets: set name -> case ids (every id must be in ``cases``).
        landmark_labels: organ name -> label id (see ``LANDMARK_HEIGHT_MM``).
        out_dir: output folder: ``<set>.nii.gz`` / ``<set>.png`` per set,
            ``body_frequency.nii.gz``, ``diversity.csv``, ``frames.csv``, ``sets.csv``,
            ``tom.json``; ``.cases/`` caches per-case maps so a re-run resumes.
        grid: the TOM grid.
        body_suv: PET threshold (SUV) of the body outline.
        smooth_mm: Gaussian sigma (canonical mm) of the density whose entropy is reported.
        match_size / repeats / seed: equal-size subsets for the ``*_matched`` measures (default
            size: the smallest set with >= 2 cases).
    """
    from lion_nnunet.analysis.tom_pictures import save_tom_png

    grid = grid or FrameGrid()
    out = Path(out_dir)
    if (out / "diversity.csv").is_file() and not overwrite:
        raise LionError(f"{out}/diversity.csv exists; use --overwrite to replace it")
    known = {c for c, _, _ in cases}
    for name, ids in sets.items():
        missing = sorted(set(ids) - known)
        if missing:
            raise LionError(
                f"set {name!r} names {len(missing)} case(s) without a label map, e.g. "
                f"{', '.join(missing[:5])}; check the case ids or the --labels folder"
            )
        if not ids:
            raise LionError(f"set {name!r} is empty")
    landmarks = {k: int(v) for k, v in landmark_labels.items() if k in LANDMARK_HEIGHT_MM}
    jobs = [
        CaseJob(
            cid, str(lab), str(pet) if pet else None, landmarks, float(body_suv),
            tuple(map(tuple, (grid.shape_xyz, grid.lo_mm, grid.hi_mm))),
            str(out / ".cases" / f"{cid}.npz"),
        )
        for cid, lab, pet in cases
        if cid in {c for ids in sets.values() for c in ids}
    ]  # fmt: skip
    if overwrite:
        for job in jobs:
            Path(job.cache).unlink(missing_ok=True)
    maps = {m.case_id: m for m in parallel_map(map_case, jobs, num_processes, "tom", progress)}
    frames = pd.DataFrame([m.info for m in maps.values()])
    fallback = frames[frames["z_method"] != "landmarks"]
    if len(fallback):
        log.warning(
            "%d of %d case(s) lack two landmark organs and use a fallback body-axis frame "
            "(see frames.csv, column z_method)", len(fallback), len(frames),
        )  # fmt: skip
    body = body_grid(list(maps.values()), grid)
    table = diversity_table(sets, maps, grid, body, match_size, repeats, seed, smooth_mm)
    table.insert(1, "file", [file_stem(s) for s in sets])
    body_freq = np.bincount(
        np.concatenate([m.body_bins for m in maps.values()]), minlength=grid.size
    ) / max(1, len(maps))
    write_image(grid.to_image(body_freq.astype(np.float32)), out / "body_frequency.nii.gz")
    for (name, ids), row in zip(sets.items(), table.itertuples(), strict=True):
        tom = occurrence([maps[c] for c in ids], grid)
        stem = file_stem(name)
        write_image(grid.to_image(np.minimum(tom, 65535).astype(np.uint16)), out / f"{stem}.nii.gz")
        title = (
            f"{name}: {row.n_cases} cases, coverage {row.coverage:.3f}, entropy {row.entropy:.3f}"
        )
        save_tom_png(tom, body_freq, grid, out / f"{stem}.png", title)
    members = pd.DataFrame([{"set": s, "case_id": c} for s, ids in sets.items() for c in ids])
    write_csv(members, out / "sets.csv")
    write_csv(frames, out / "frames.csv")
    settings = {
        "grid_xyz": list(grid.shape_xyz), "box_lo_mm": list(grid.lo_mm),
        "box_hi_mm": list(grid.hi_mm), "bin_mm": grid.bin_mm.round(3).tolist(),
        "body_suv": body_suv, "smooth_mm": smooth_mm, "body_grid_bins": int(body.size),
        "repeats": repeats, "seed": seed,
        "landmarks": landmarks, "fallback_cases": fallback["case_id"].tolist(),
        "frame_version": FRAME_VERSION,
    }  # fmt: skip
    write_json(settings, out / "tom.json")
    write_csv(table, out / "diversity.csv")  # last: marks the run complete
    return TomResult(out, table, frames)
