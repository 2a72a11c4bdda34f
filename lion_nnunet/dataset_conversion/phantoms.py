"""Synthetic whole-body PET cohorts in the autoPET layout, with TotalSegmentator-style organ masks.

``make_cohort`` writes, per case::

    OUT/studies/<patient_id>/<study>/SUV.nii.gz     PET in SUV (float32), PSF-blurred and noisy
    OUT/studies/<patient_id>/<study>/CTres.nii.gz   crude CT in HU on the PET grid
    OUT/studies/<patient_id>/<study>/SEG.nii.gz     binary tumor mask on the PET grid (uint8)
    OUT/organs/<patient_id>/<study>/                TotalSegmentator-style output on a finer,
                                                    shifted CT grid: <class>.nii.gz binary masks
                                                    ("masks") or total.nii.gz (+ head_glands_
                                                    cavities.nii.gz) multi-label files ("ml")
    OUT/cases.csv, OUT/lesions.csv                  one row per case / per lesion

Images have identity direction (LPS): x to the patient's left, y posterior, z superior, so a
higher numpy z index (arrays are (z, y, x)) is closer to the head. Everything is deterministic by
``seed``; a re-run skips cases already written completely.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy.ndimage import gaussian_filter

from lion_nnunet.dataset_conversion import phantom_anatomy as anat
from lion_nnunet.errors import LionError
from lion_nnunet.io import write_csv, write_image, write_json
from lion_nnunet.labels import get_label_set
from lion_nnunet.progress import parallel_map

log = logging.getLogger(__name__)

DISEASES: dict[str, dict[str, float]] = {
    "fdg": {"lymphoma": 0.3, "lung_cancer": 0.25, "melanoma": 0.25, "negative": 0.2},
    "psma": {"prostate_cancer": 0.8, "negative": 0.2},
}

#: Physiological SUV per structure and tracer: (low, high) drawn uniformly per patient.
UPTAKE: dict[str, dict[str, tuple[float, float]]] = {
    "fdg": {
        "body": (0.6, 0.9), "lung": (0.3, 0.5), "bone": (0.8, 1.2), "brain": (7.0, 10.0),
        "heart": (1.5, 8.0), "liver": (2.0, 2.6), "spleen": (1.6, 2.1), "kidney": (3.0, 5.0),
        "urinary_bladder": (10.0, 30.0), "stomach": (1.5, 3.0), "small_bowel": (1.4, 2.4),
        "duodenum": (1.4, 2.4), "colon": (1.5, 3.0), "parotid": (1.2, 2.0),
        "submandibular": (1.2, 2.0), "lacrimal": (0.8, 1.2), "prostate": (0.8, 1.2),
    },
    "psma": {
        "body": (0.4, 0.6), "lung": (0.2, 0.4), "bone": (0.5, 0.8), "brain": (0.2, 0.4),
        "heart": (1.0, 1.6), "liver": (4.0, 7.0), "spleen": (4.0, 7.0), "kidney": (20.0, 35.0),
        "urinary_bladder": (10.0, 40.0), "stomach": (1.2, 2.0), "small_bowel": (4.0, 7.0),
        "duodenum": (4.0, 8.0), "colon": (1.5, 3.0), "parotid": (12.0, 20.0),
        "submandibular": (12.0, 20.0), "lacrimal": (5.0, 10.0), "prostate": (0.8, 1.5),
    },
}  # fmt: skip

#: CT numbers (HU) for the crude CT.
HU = {"air": -1000.0, "body": 40.0, "lung": -800.0, "bone": 700.0, "urinary_bladder": 10.0}


@dataclass(frozen=True)
class Scanner:
    """A synthetic scanner: PSF FWHM in mm and count level (higher = less noise)."""

    name: str
    center: str
    fwhm_mm: float
    counts_per_suv: float


SCANNERS = (
    Scanner("scanner_A", "center_1", 5.0, 40.0),
    Scanner("scanner_B", "center_2", 8.0, 12.0),
    Scanner("scanner_C", "center_3", 11.0, 5.0),
)


@dataclass(frozen=True)
class SizePreset:
    """PET grid (numpy shape z, y, x; isotropic spacing mm), CT grid spacing, body length shown."""

    shape_zyx: tuple[int, int, int]
    spacing_mm: float
    ct_spacing_mm: float
    body_mm_in_fov: float


SIZES = {
    "small": SizePreset((96, 40, 48), 6.0, 4.0, 1000.0),
    "wholebody": SizePreset((400, 200, 200), 4.0, 1.5, 1650.0),
}
ORGAN_FORMATS = ("masks", "ml")
LESION_VOLUME_ML = (0.5, 50.0)


def _suv(tracer: str, structure: str, rng: np.random.Generator) -> float:
    lo, hi = UPTAKE[tracer][structure]
    return float(rng.uniform(lo, hi))


def _uptake_key(ts_name: str) -> str:
    for prefix in ("kidney", "parotid", "submandibular", "lacrimal"):
        if ts_name.startswith(prefix):
            return prefix
    return ts_name


def _pet_grid(size: SizePreset) -> anat.Grid:
    _, ny, nx = size.shape_zyx
    s = size.spacing_mm
    return anat.Grid(size.shape_zyx, (s, s, s), (-(nx - 1) * s / 2, -(ny - 1) * s / 2, 0.0))


def _ct_grid(pet: anat.Grid, size: SizePreset, place: anat.Placement) -> anat.Grid:
    """A finer CT grid, shifted by a fraction of a voxel and cropped to the body in x/y."""
    s = size.ct_spacing_mm
    half_x = min(260.0 * place.scale_xy, pet.spacing_xyz[0] * pet.shape_zyx[2] / 2)
    half_y = min(170.0 * place.scale_xy, pet.spacing_xyz[1] * pet.shape_zyx[1] / 2)
    z_len = pet.spacing_xyz[2] * pet.shape_zyx[0]
    shape = (int(z_len / s), int(2 * half_y / s), int(2 * half_x / s))
    origin = (-half_x + 0.37 * s, -half_y + 0.21 * s, 0.43 * s)
    return anat.Grid(shape, (s, s, s), origin)


def _image(array: np.ndarray, grid: anat.Grid) -> sitk.Image:
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(grid.spacing_xyz)
    img.SetOrigin(grid.origin_xyz)
    return img


def _placement(size: SizePreset, pet: anat.Grid, rng: np.random.Generator) -> anat.Placement:
    fov_z = pet.spacing_xyz[2] * pet.shape_zyx[0]
    base = fov_z / size.body_mm_in_fov
    return anat.Placement(
        scale_xy=base * rng.uniform(0.85, 1.1),
        scale_z=base * rng.uniform(0.9, 1.05),
        cx=rng.uniform(-8, 8) * base,
        cy=rng.uniform(-8, 8) * base,
        z_vertex=fov_z - rng.uniform(5, 40) * base,
    )


def _organ_labels(grid: anat.Grid, place: anat.Placement, classes: list[str]) -> np.ndarray:
    """uint8 (z, y, x) map: 0 = none, i + 1 = classes[i]; later ORGANS entries win overlaps."""
    out = np.zeros(grid.shape_zyx, dtype=np.uint8)
    for name in anat.ORGANS:
        if name in classes:
            box, mask = anat.render(grid, anat.ORGANS[name], place)
            out[box][mask] = classes.index(name) + 1
    return out


@dataclass
class _CaseSpec:
    out: str
    tracer: str
    index: int
    seed: int
    size: str
    organ_format: str
    disease: str


def _make_case(spec: _CaseSpec) -> dict:
    """Build and write one case; return its cases.csv row plus its lesion rows."""
    rng = np.random.default_rng([spec.seed, spec.index])
    size = SIZES[spec.size]
    tracer = spec.tracer
    patient = f"SYN{tracer.upper()}_{spec.index:04d}"
    study = "study_01"
    pet = _pet_grid(size)
    place = _placement(size, pet, rng)
    scanner = SCANNERS[int(rng.integers(len(SCANNERS)))]

    body = anat.body_mask(pet, place)
    activity = np.zeros(pet.shape_zyx, dtype=np.float32)
    activity[body] = _suv(tracer, "body", rng)
    ct = np.full(pet.shape_zyx, HU["air"], dtype=np.float32)
    ct[body] = HU["body"]
    for shape in anat.LUNGS:
        anat.paint(activity, pet, shape, place, _suv(tracer, "lung", rng))
        anat.paint(ct, pet, shape, place, HU["lung"])
    for shape in anat.BONE:
        anat.paint(activity, pet, shape, place, _suv(tracer, "bone", rng))
        anat.paint(ct, pet, shape, place, HU["bone"])
    for name, shape in {**anat.ORGANS, **anat.UNLABELLED_UPTAKE}.items():
        anat.paint(activity, pet, shape, place, _suv(tracer, _uptake_key(name), rng))
        anat.paint(ct, pet, shape, place, HU.get(name, 50.0))
    activity *= body

    # Lesions: volumes log-uniform in LESION_VOLUME_ML, contrast vs local SUV subtle to obvious.
    tumor = np.zeros(pet.shape_zyx, dtype=bool)
    lesion_rows = []
    regions = anat.DISEASE_REGIONS[spec.disease]
    n_lesions = 0 if not regions else int(min(8, 1 + rng.poisson(2.5)))
    names, weights = list(regions), np.array(list(regions.values()), dtype=float)
    voxel_ml = float(np.prod(pet.spacing_xyz)) / 1000.0
    for k in range(n_lesions):
        volume_ml = float(np.exp(rng.uniform(*np.log(LESION_VOLUME_ML))))
        radius_body = (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3) / place.scale_xy
        near = None
        if rng.random() < 0.3:
            near = str(rng.choice(anat.HOT_NEIGHBOURS[tracer]))
            center, region = anat.sample_near_organ(near, radius_body, rng), f"near_{near}"
        else:
            region = str(rng.choice(names, p=weights / weights.sum()))
            center = anat.sample_region_center(region, rng, flip=bool(rng.random() < 0.5))
        radii = radius_body * rng.uniform(0.7, 1.3, 3)
        radii *= radius_body / np.prod(radii) ** (1 / 3)  # keep the volume, vary the shape
        box, mask = anat.render_ellipsoid(pet, place.to_physical(center), place.radii(tuple(radii)))
        mask &= body[box]
        if rng.random() < 0.5 and mask.sum() > 8:  # irregular: cut by a second, offset sphere
            off = place.to_physical(tuple(np.array(center) + radii * rng.uniform(-0.9, 0.9, 3)))
            cut_box, cut = anat.render_ellipsoid(pet, off, place.radii(tuple(radii * 0.6)))
            cut_full = np.zeros(pet.shape_zyx, dtype=bool)
            cut_full[cut_box] = cut
            mask &= ~cut_full[box]
        if not mask.any():
            continue
        local = float(np.median(activity[box][mask])) or _suv(tracer, "body", rng)
        contrast = float(np.exp(rng.uniform(np.log(1.8), np.log(10.0))))
        lesion_suv = max(local * contrast, 1.5 * _suv(tracer, "body", rng))
        activity[box][mask] = np.maximum(activity[box][mask], lesion_suv)
        tumor[box] |= mask
        phys = place.to_physical(center)
        lesion_rows.append(
            {
                "patient_id": patient, "study": study, "lesion": k, "region": region,
                "near_organ": near or "", "volume_ml": round(float(mask.sum()) * voxel_ml, 3),
                "suv": round(lesion_suv, 2), "center_x_mm": round(float(phys[0]), 1),
                "center_y_mm": round(float(phys[1]), 1), "center_z_mm": round(float(phys[2]), 1),
            }
        )  # fmt: skip

    # Scanner: Gaussian PSF then Poisson counts (noise ~ 1/sqrt(counts)).
    sigma = scanner.fwhm_mm / 2.3548 / np.array(pet.spacing_xyz)[::-1]
    blurred = gaussian_filter(activity, sigma=sigma)
    lam = np.clip(blurred, 0, None) * scanner.counts_per_suv
    suv = (rng.poisson(lam) / scanner.counts_per_suv).astype(np.float32)
    ct += rng.normal(0, 15, ct.shape).astype(np.float32)

    study_dir = Path(spec.out) / "studies" / patient / study
    organ_dir = Path(spec.out) / "organs" / patient / study
    write_image(_image(ct.astype(np.int16), pet), study_dir / "CTres.nii.gz")
    write_image(_image(tumor.astype(np.uint8), pet), study_dir / "SEG.nii.gz")
    _write_organs(organ_dir, tracer, spec.organ_format, _ct_grid(pet, size, place), place)
    write_image(_image(suv, pet), study_dir / "SUV.nii.gz")  # last: marks the study complete

    row = {
        "patient_id": patient, "study": study, "study_dir": f"{patient}/{study}",
        "organs_dir": f"{patient}/{study}", "tracer": tracer, "disease": spec.disease,
        "center": scanner.center, "scanner": scanner.name, "n_lesions": len(lesion_rows),
        "tumor_volume_ml": round(float(tumor.sum()) * voxel_ml, 3),
        "n_lesions_near_organs": sum(1 for r in lesion_rows if r["near_organ"]),
    }  # fmt: skip
    record = {"case": row, "lesions": lesion_rows}
    write_json(record, Path(spec.out) / ".phantoms" / f"{patient}_{study}.json")
    return record


def _write_organs(
    folder: Path, tracer: str, organ_format: str, grid: anat.Grid, place: anat.Placement
) -> None:
    """Write the TotalSegmentator-style organ output of one case on the CT grid."""
    label_set = get_label_set(tracer)
    by_task: dict[str, list[tuple[str, int]]] = {}
    for organ in label_set.organs:
        for src in organ.sources:
            by_task.setdefault(src.task, []).append((src.name, src.id))
    for task, classes in by_task.items():
        names = [n for n, _ in classes]
        labels = _organ_labels(grid, place, names)
        if organ_format == "ml":
            lut = np.zeros(len(names) + 1, dtype=np.uint8)
            lut[1:] = [i for _, i in classes]
            write_image(_image(lut[labels], grid), folder / f"{task}.nii.gz")
        else:
            for i, name in enumerate(names):
                write_image(
                    _image((labels == i + 1).astype(np.uint8), grid), folder / f"{name}.nii.gz"
                )


def _assign_diseases(tracer: str, cases: int, rng: np.random.Generator) -> list[str]:
    """Diseases in their proportions, every disease present once cases >= number of diseases."""
    names = list(DISEASES[tracer])
    weights = np.array(list(DISEASES[tracer].values()))
    counts = np.floor(weights * cases).astype(int)
    counts[counts == 0] = 1 if cases >= len(names) else 0
    while counts.sum() < cases:
        counts[int(np.argmax(weights * cases - counts))] += 1
    while counts.sum() > cases:
        counts[int(np.argmax(counts))] -= 1
    out = [n for n, c in zip(names, counts, strict=True) for _ in range(c)]
    rng.shuffle(out)
    return out


def make_cohort(
    out_dir: str | Path,
    tracer: str,
    cases: int,
    seed: int = 0,
    size: str = "small",
    organ_format: str = "masks",
    num_processes: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Write a synthetic PET cohort (autoPET layout + organ masks + cases.csv); return cases.

    Args:
        out_dir: output folder (created).
        tracer: "fdg" or "psma": organ uptake pattern, diseases and organ classes written.
        cases: number of studies (one study per patient).
        seed: everything is a deterministic function of (seed, case index).
        size: "small" (PET 48x40x96 voxels at 6 mm, x*y*z; CT grid 4 mm) for tests and the demo,
            or "wholebody" (PET 200x200x400 at 4 mm; CT grid 1.5 mm) for benchmarks.
        organ_format: "masks" (one binary <class>.nii.gz per TotalSegmentator class) or "ml"
            (multi-label total.nii.gz, and head_glands_cavities.nii.gz when the tracer needs it).
        num_processes: worker processes.
        overwrite: rebuild cases that already exist (else they are skipped).
        progress: show a progress bar.

    Returns:
        The cases table (also written to ``out_dir/cases.csv``); lesions go to lesions.csv.
    """
    tracer = get_label_set(tracer).tracer
    if tracer not in DISEASES:
        raise LionError(
            f"no phantom model for tracer {tracer!r}; choose from {', '.join(DISEASES)}"
        )
    if int(cases) < 1:
        raise LionError(f"--cases must be at least 1, got {cases}")
    if size not in SIZES:
        raise LionError(f"unknown phantom size {size!r}; choose from {', '.join(SIZES)}")
    if organ_format not in ORGAN_FORMATS:
        raise LionError(f"unknown organ format {organ_format!r}; choose from {ORGAN_FORMATS}")
    out = Path(out_dir)
    settings = {"tracer": tracer, "seed": seed, "size": size, "organ_format": organ_format}
    settings_file = out / ".phantoms" / "settings.json"
    if settings_file.is_file() and not overwrite:
        before = json.loads(settings_file.read_text())
        if before != settings:
            raise LionError(
                f"{out} holds a cohort made with {before}, not {settings}; "
                "use another --out or --overwrite"
            )
    write_json(settings, settings_file)

    diseases = _assign_diseases(tracer, int(cases), np.random.default_rng([seed, 10**6]))
    todo, records = [], {}
    for i, disease in enumerate(diseases):
        marker = out / ".phantoms" / f"SYN{tracer.upper()}_{i:04d}_study_01.json"
        if marker.is_file() and not overwrite:
            records[i] = json.loads(marker.read_text())
        else:
            todo.append(_CaseSpec(str(out), tracer, i, seed, size, organ_format, disease))
    if records:
        log.info("%d of %d cases already written; skipping them", len(records), cases)
    for spec, record in zip(
        todo,
        parallel_map(_make_case, todo, num_processes, f"phantoms {tracer}", progress),
        strict=True,
    ):
        records[spec.index] = record
    ordered = [records[i] for i in range(int(cases))]
    table = pd.DataFrame([r["case"] for r in ordered])
    lesions = pd.DataFrame([les for r in ordered for les in r["lesions"]])
    write_csv(table, out / "cases.csv")
    write_csv(lesions, out / "lesions.csv")
    return table
