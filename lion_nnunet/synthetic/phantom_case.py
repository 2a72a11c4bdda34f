"""One synthetic PET study in memory: physiological uptake, lesions, PSF blur and Poisson noise.

:func:`synthesize_case` draws a patient (:mod:`phantom_anatomy`), paints tracer-typical SUVs per
structure on the PET grid, adds lesions of the case's disease, blurs with the scanner's Gaussian
PSF and adds Poisson counting noise. Organ masks are rendered later, on a separate CT grid, from
the same shapes (:func:`organ_label_map`), so they agree with the PET in physical space.

Arrays are numpy (z, y, x); grids give spacing and origin as (x, y, z) mm with identity
direction (LPS: x to the patient's left, y posterior, z superior).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy.ndimage import binary_dilation, find_objects, gaussian_filter

from lion_nnunet.synthetic import phantom_anatomy as anat

#: Diseases per tracer with their default share of a cohort ("negative" = lesion-free study).
DISEASES: dict[str, dict[str, float]] = {
    "fdg": {"lymphoma": 0.3, "lung_cancer": 0.25, "melanoma": 0.25, "negative": 0.2},
    "psma": {"prostate_cancer": 0.8, "negative": 0.2},
}

#: Physiological SUV per structure and tracer: (low, high), drawn uniformly per patient.
UPTAKE: dict[str, dict[str, tuple[float, float]]] = {
    "fdg": {
        "body": (0.6, 0.9), "lung": (0.3, 0.5), "bone": (0.8, 1.2), "brain": (7.0, 10.0),
        "heart": (2.0, 8.0), "heart_blood_pool": (1.4, 2.0), "liver": (2.0, 2.6),
        "spleen": (1.6, 2.1), "kidney": (3.0, 5.0), "urinary_bladder": (10.0, 30.0),
        "stomach": (1.5, 3.0), "small_bowel": (1.4, 2.4), "duodenum": (1.4, 2.4),
        "colon": (1.5, 3.0), "parotid": (1.2, 2.0), "submandibular": (1.2, 2.0),
        "lacrimal": (0.8, 1.2), "prostate": (0.8, 1.2),
    },
    "psma": {
        "body": (0.4, 0.6), "lung": (0.2, 0.4), "bone": (0.5, 0.8), "brain": (0.2, 0.4),
        "heart": (1.0, 1.6), "heart_blood_pool": (1.0, 1.6), "liver": (4.0, 7.0),
        "spleen": (4.0, 7.0), "kidney": (20.0, 35.0), "urinary_bladder": (10.0, 40.0),
        "stomach": (1.2, 2.0), "small_bowel": (4.0, 7.0), "duodenum": (4.0, 8.0),
        "colon": (1.5, 3.0), "parotid": (12.0, 20.0), "submandibular": (12.0, 20.0),
        "lacrimal": (5.0, 10.0), "prostate": (0.8, 1.5),
    },
}  # fmt: skip

#: CT numbers (HU) for the crude CT; structures not listed get 50 HU.
HU = {"air": -1000.0, "body": 40.0, "lung": -800.0, "bone": 700.0, "urinary_bladder": 10.0}


@dataclass(frozen=True)
class Scanner:
    """A synthetic scanner: PSF FWHM (mm, at the 4 mm reference grid) and count level.

    ``counts_per_suv`` is the mean number of counts per voxel per SUV unit: noise standard
    deviation is about ``sqrt(SUV / counts_per_suv)`` before the reconstruction filter.
    """

    name: str
    center: str
    fwhm_mm: float
    counts_per_suv: float


SCANNERS = (
    Scanner("scanner_A", "center_1", 5.0, 40.0),  # digital, sharp, low noise
    Scanner("scanner_B", "center_2", 7.5, 15.0),
    Scanner("scanner_C", "center_3", 10.0, 6.0),  # older PMT scanner, blurry and noisy
)


@dataclass(frozen=True)
class SizePreset:
    """Grids and scales of one phantom size.

    Attributes:
        shape_zyx: PET grid, numpy (z, y, x) voxels.
        spacing_mm: PET voxel size in x and y (mm); also in z unless ``slice_mm`` is given.
        ct_spacing_mm: CT (organ mask) voxel size (isotropic, mm).
        body_mm_in_fov: standard-body millimetres shown in the PET field of view (z).
        lesion_ml: range of lesion volumes (ml) drawn log-uniformly.
        psf_scale: scanner FWHM multiplier (the PSF is defined for 4 mm voxels).
        slice_mm: PET slice spacing (z, mm) when it differs from ``spacing_mm``.
    """

    shape_zyx: tuple[int, int, int]
    spacing_mm: float
    ct_spacing_mm: float
    body_mm_in_fov: float
    lesion_ml: tuple[float, float]
    psf_scale: float
    slice_mm: float | None = None


SIZES = {
    # The small body is scaled to ~0.58 of an adult; lesion volumes shrink to match (1-20 ml =
    # 5-90 voxels) so they stay resolvable. Volumes are always measured from the voxel mask.
    "small": SizePreset((96, 40, 48), 6.0, 4.0, 1000.0, (1.0, 20.0), 1.5),
    "wholebody": SizePreset((400, 200, 200), 4.0, 1.5, 1650.0, (0.5, 50.0), 1.0),
    # The autoPET FDG grid (Siemens Biograph mCT reconstructions): 400 x 400 voxels of 2.04 mm,
    # 3 mm slices, skull base to mid-thigh; for GPU memory and speed measurements.
    "autopet": SizePreset((300, 400, 400), 2.0364, 2.0, 1000.0, (0.5, 50.0), 1.0, slice_mm=3.0),
}

#: Lesion SUV / local SUV, drawn log-uniformly per lesion: subtle to obvious. PSMA-avid lesions
#: are typically far hotter than FDG-avid ones against their (lower) background.
CONTRAST: dict[str, tuple[float, float]] = {"fdg": (1.8, 10.0), "psma": (3.0, 40.0)}

#: The reconstruction filter of :func:`scan`: a Gaussian of this sigma in voxels.
RECON_SIGMA = 0.5

#: Rose criterion (Rose 1948): a lesion is seen when its signal-to-noise ratio, contrast over
#: noise standard deviation times the square root of its size in voxels, is at least 5.
ROSE_SNR = 5.0

#: Chance that a lesion is placed against a hot organ (anat.NEAR_ORGANS of its disease).
NEAR_ORGAN_FRACTION = 0.3
MAX_LESIONS = 8


@dataclass
class PhantomCase:
    """One synthetic study. Arrays are numpy (z, y, x) on ``pet_grid``."""

    patient_id: str
    study: str
    tracer: str
    disease: str
    scanner: Scanner
    psf_fwhm_mm: float
    pet_grid: anat.Grid
    ct_grid: anat.Grid
    anatomy: anat.Anatomy
    suv: np.ndarray  # float32 SUV
    ct: np.ndarray  # int16 HU, on the PET grid
    seg: np.ndarray  # uint8 {0, 1}
    lesions: list[dict] = field(default_factory=list)
    activity: np.ndarray | None = field(default=None, repr=False)  # noise-free SUV before the PSF
    #: uint16 lesion map: row ``lesions[i]`` is ``lesion_map == lesions[i]["lesion"] + 1``
    lesion_map: np.ndarray | None = field(default=None, repr=False)

    @property
    def voxel_ml(self) -> float:
        """PET voxel volume in ml."""
        return float(np.prod(self.pet_grid.spacing_xyz)) / 1000.0

    def row(self) -> dict:
        """This study's row of cases.csv."""
        return {
            "patient_id": self.patient_id, "study": self.study,
            "study_dir": f"{self.patient_id}/{self.study}",
            "organs_dir": f"{self.patient_id}/{self.study}", "tracer": self.tracer,
            "disease": self.disease, "center": self.scanner.center, "scanner": self.scanner.name,
            "n_lesions": len(self.lesions),
            "tumor_volume_ml": round(float(self.seg.sum()) * self.voxel_ml, 4),
            "n_lesions_near_organs": sum(1 for r in self.lesions if r["near_organ"]),
            "psf_fwhm_mm": self.psf_fwhm_mm,
            "counts_per_suv": self.scanner.counts_per_suv,
        }  # fmt: skip


def to_image(array: np.ndarray, grid: anat.Grid) -> sitk.Image:
    """SimpleITK image of a (z, y, x) array on ``grid`` (identity direction)."""
    img = sitk.GetImageFromArray(array)
    img.SetSpacing(grid.spacing_xyz)
    img.SetOrigin(grid.origin_xyz)
    return img


def pet_grid(size: SizePreset) -> anat.Grid:
    """The PET grid of a size preset, centred on x = y = 0, z from 0 (feet side) upwards."""
    _, ny, nx = size.shape_zyx
    s = size.spacing_mm
    sz = size.slice_mm or s
    return anat.Grid(size.shape_zyx, (s, s, sz), (-(nx - 1) * s / 2, -(ny - 1) * s / 2, 0.0))


def ct_grid(pet: anat.Grid, size: SizePreset, place: anat.Placement) -> anat.Grid:
    """A finer CT grid, shifted by a fraction of a voxel and cropped to the body in x/y."""
    s = size.ct_spacing_mm
    half_x = min(260.0 * place.scale_xy, pet.spacing_xyz[0] * pet.shape_zyx[2] / 2)
    half_y = min(170.0 * place.scale_xy, pet.spacing_xyz[1] * pet.shape_zyx[1] / 2)
    z_len = pet.spacing_xyz[2] * pet.shape_zyx[0]
    shape = (int(z_len / s), int(2 * half_y / s), int(2 * half_x / s))
    origin = (-half_x + 0.37 * s, -half_y + 0.21 * s, 0.43 * s)
    return anat.Grid(shape, (s, s, s), origin)


def organ_label_map(grid: anat.Grid, anatomy: anat.Anatomy, classes: list[str]) -> np.ndarray:
    """uint8 (z, y, x) map on ``grid``: 0 = none, i + 1 = ``classes[i]`` (TotalSegmentator names).

    Organs are drawn in :data:`phantom_anatomy.ORGANS` order; later ones win where they overlap,
    so classes never overlap (as in a TotalSegmentator multi-label output).
    """
    out = np.zeros(grid.shape_zyx, dtype=np.uint8)
    for name, shape in anatomy.organs.items():
        if name in classes:
            box, mask = anat.render(grid, shape, anatomy.place)
            out[box][mask] = classes.index(name) + 1
    return out


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


def _uptake_key(name: str) -> str:
    for prefix in ("kidney", "parotid", "submandibular", "lacrimal"):
        if name.startswith(prefix):
            return prefix
    return name


def _pad(box: tuple[slice, ...], shape: tuple[int, ...], n: int) -> tuple[slice, ...]:
    return tuple(
        slice(max(0, s.start - n), min(dim, s.stop + n)) for s, dim in zip(box, shape, strict=True)
    )


def _grow(mask: np.ndarray, box: tuple[slice, ...], shape: tuple[int, ...]) -> tuple:
    """Dilate a box-local mask by one voxel (26-neighbourhood); return (padded box, mask)."""
    padded = _pad(box, shape, 1)
    local = np.zeros(tuple(s.stop - s.start for s in padded), dtype=bool)
    inner = tuple(
        slice(b.start - p.start, b.start - p.start + m)
        for b, p, m in zip(box, padded, mask.shape, strict=True)
    )
    local[inner] = mask
    return padded, binary_dilation(local, structure=np.ones((3, 3, 3), bool))


def _ellipsoid_in_box(grid: anat.Grid, box: tuple[slice, ...], center_mm, radii_mm) -> np.ndarray:
    sz, sy, sx = box
    x = (grid.axis_mm(0)[sx] - center_mm[0]) / radii_mm[0]
    y = (grid.axis_mm(1)[sy] - center_mm[1]) / radii_mm[1]
    z = (grid.axis_mm(2)[sz] - center_mm[2]) / radii_mm[2]
    return (z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2) <= 1.0


def _sample_lesion(
    rng: np.random.Generator,
    tracer: str,
    disease: str,
    size: SizePreset,
    pet: anat.Grid,
    anatomy: anat.Anatomy,
    body: np.ndarray,
    hot: np.ndarray,
    tumor: np.ndarray,
) -> tuple[tuple[slice, ...], np.ndarray, str] | None:
    """One candidate lesion: (box, mask in box, region), or None when it does not fit."""
    place = anatomy.place
    volume_ml = float(np.exp(rng.uniform(*np.log(size.lesion_ml))))
    radius_body = (3 * volume_ml * 1000 / (4 * np.pi)) ** (1 / 3) / place.scale_xy
    near = None
    regions = anat.DISEASE_REGIONS[disease]
    if anat.NEAR_ORGANS[disease] and rng.random() < NEAR_ORGAN_FRACTION:
        near = str(rng.choice(anat.NEAR_ORGANS[disease]))
        center = anat.sample_near_organ(near, radius_body, rng, anatomy)
        region = f"near_{near}"
    else:
        names, weights = list(regions), np.array(list(regions.values()), dtype=float)
        region = str(rng.choice(names, p=weights / weights.sum()))
        center = anat.sample_region_center(region, rng, bool(rng.random() < 0.5), anatomy)
    radii = radius_body * rng.uniform(0.7, 1.3, 3)
    radii *= radius_body / np.prod(radii) ** (1 / 3)  # keep the volume, vary the shape
    box, mask = anat.render_ellipsoid(pet, place.to_physical(center), place.radii(tuple(radii)))
    mask &= body[box]
    if near is not None:  # hug the organ: cut its voxels out of the lesion
        mask &= hot[box] != anat.HOT_NEIGHBOURS[tracer].index(near) + 1
    if rng.random() < 0.5 and mask.sum() > 8:  # irregular: bite out an offset ellipsoid
        off = np.array(center) + radii * rng.uniform(-0.9, 0.9, 3)
        mask &= ~_ellipsoid_in_box(
            pet, box, place.to_physical(tuple(off)), place.radii(tuple(radii * 0.6))
        )
    if not mask.any():
        return None
    mask = cc3d.largest_k(mask, k=1, connectivity=26) > 0  # one connected lesion
    padded, grown = _grow(mask, box, pet.shape_zyx)
    if (grown & tumor[padded]).any():  # would touch an earlier lesion: counts must stay honest
        return None
    return box, mask, region


def _add_lesions(
    rng: np.random.Generator,
    tracer: str,
    disease: str,
    size: SizePreset,
    pet: anat.Grid,
    anatomy: anat.Anatomy,
    body: np.ndarray,
    activity: np.ndarray,
) -> tuple[np.ndarray, list[dict]]:
    """Paint lesions into ``activity`` (in place); return the lesion map (lesion ``i`` has value
    ``i + 1``) and one row per lesion."""
    tumor = np.zeros(pet.shape_zyx, dtype=bool)
    lesion_map = np.zeros(pet.shape_zyx, dtype=np.uint16)
    regions = anat.DISEASE_REGIONS[disease]
    if not regions:
        return lesion_map, []
    hot_names = list(anat.HOT_NEIGHBOURS[tracer])
    hot = organ_label_map(pet, anatomy, hot_names)
    voxel_ml = float(np.prod(pet.spacing_xyz)) / 1000.0
    rows = []
    for _ in range(int(min(MAX_LESIONS, 1 + rng.poisson(2.5)))):
        for _attempt in range(6):
            found = _sample_lesion(rng, tracer, disease, size, pet, anatomy, body, hot, tumor)
            if found is not None:
                break
        else:
            continue
        box, mask, region = found
        local = float(np.median(activity[box][mask]))
        contrast = float(np.exp(rng.uniform(*np.log(CONTRAST[tracer]))))
        lesion_suv = max(local * contrast, 1.5 * UPTAKE[tracer]["body"][1])
        activity[box][mask] = np.maximum(activity[box][mask], lesion_suv)
        tumor[box] |= mask
        lesion_map[box][mask] = len(rows) + 1
        padded, grown = _grow(mask, box, pet.shape_zyx)
        touching = np.bincount(hot[padded][grown], minlength=len(hot_names) + 1)[1:]
        idx = np.argwhere(mask).mean(0) + [s.start for s in box]  # (z, y, x) centroid
        center = [pet.origin_xyz[a] + pet.spacing_xyz[a] * idx[2 - a] for a in range(3)]
        rows.append(
            {
                "lesion": len(rows), "region": region,
                "near_organ": hot_names[int(touching.argmax())] if touching.any() else "",
                "volume_ml": round(float(mask.sum()) * voxel_ml, 4), "suv": round(lesion_suv, 2),
                "center_x_mm": round(center[0], 1), "center_y_mm": round(center[1], 1),
                "center_z_mm": round(center[2], 1),
            }
        )  # fmt: skip
    return lesion_map, rows


def lesion_snr(
    lesion_map: np.ndarray, activity: np.ndarray, suv: np.ndarray, pet: anat.Grid, fwhm_mm: float
) -> list[float]:
    """Rose signal-to-noise ratio of each lesion in the scanned image (:data:`ROSE_SNR`).

    For lesion ``i`` (``lesion_map == i + 1``, N voxels): its contrast is the mean of the
    noise-free image the scanner would give (PSF and reconstruction filter, no counting noise)
    over the lesion minus that over a 2-voxel shell around it inside the body (other lesions and
    air left out), so a lesion no brighter than the tissue around it, a hot organ included, has
    none. The noise is the standard deviation of ``suv`` minus that image over lesion and shell,
    divided by what the reconstruction filter leaves of independent per-voxel noise (about 0.51
    for its 0.5-voxel Gaussian): the counting noise before the filter, which is independent per
    voxel, as Rose's criterion assumes (the filter lowers the per-voxel noise but not that of
    the lesion's mean). SNR = contrast / noise x sqrt(N).

    Args:
        lesion_map: lesion ``i`` has value ``i + 1`` (z, y, x).
        activity: noise-free SUV before the PSF.
        suv: the scanned SUV (PSF, Poisson counts, reconstruction filter), not clipped.
        pet: the grid (voxel size).
        fwhm_mm: the PSF's full width at half maximum (mm).

    Returns:
        One SNR per lesion number 1 .. max (NaN for a number no voxel has).
    """
    sigma = fwhm_mm / 2.3548 / np.array(pet.spacing_xyz)[::-1]
    expected = gaussian_filter(gaussian_filter(activity, sigma=sigma), sigma=RECON_SIGMA)
    impulse = np.zeros((9, 9, 9))
    impulse[4, 4, 4] = 1.0
    # per-voxel noise SD after the filter / before it (independent noise): sqrt(sum k^2)
    gain = float(np.sqrt((gaussian_filter(impulse, sigma=RECON_SIGMA) ** 2).sum()))
    out = []
    for i, box in enumerate(find_objects(lesion_map), start=1):
        if box is None:  # a number no lesion has (e.g. one gone at a follow-up)
            out.append(float("nan"))
            continue
        # the lesion's box grown by the shell's 2 voxels (clipped at the image's edge)
        box = tuple(slice(max(b.start - 2, 0), b.stop + 2) for b in box)
        labels = lesion_map[box]
        mask = labels == i
        shell = binary_dilation(mask, iterations=2) & (labels == 0) & (activity[box] > 0)
        near = expected[box]
        contrast = near[mask].mean() - near[shell].mean() if shell.any() else 0.0
        sd = float((suv[box] - near)[mask | shell].std()) / gain
        out.append(float(contrast / sd * np.sqrt(mask.sum())) if sd > 0 else float("inf"))
    return out


def annotate_visible(case: PhantomCase, min_snr: float = ROSE_SNR) -> PhantomCase:
    """The study as a reader would annotate it: only lesions with a Rose SNR of at least
    ``min_snr`` in the tumor mask and the lesion rows; the images stay as they are.

    A lesion whose SNR is under 5 is not distinguishable from noise (Rose 1948), or no brighter
    than the organ it lies against; a reader does not label it, so no real dataset's mask holds
    it. The lesion rows keep their ``lesion`` numbers, so the ones left out leave gaps.
    """
    if case.lesion_map is None:
        raise ValueError(f"{case.patient_id}: no lesion map to annotate from")
    keep = [row for row in case.lesions if row["rose_snr"] >= min_snr]
    seg = np.isin(case.lesion_map, [row["lesion"] + 1 for row in keep]).astype(np.uint8)
    return replace(case, seg=seg, lesions=keep)


def synthesize_case(
    tracer: str, index: int, seed: int, size: str = "small", disease: str = "negative"
) -> PhantomCase:
    """Build one study in memory; a deterministic function of (seed, index, tracer, disease).

    Args:
        tracer: "fdg" or "psma" (uptake pattern and hot organs lesions are placed against).
        index: case number; names the patient ``SYN<TRACER>_<index:04d>``.
        seed: cohort seed.
        size: a key of :data:`SIZES`.
        disease: a key of ``DISEASES[tracer]``; "negative" gives a lesion-free study.
    """
    rng = np.random.default_rng([seed, index])
    preset = SIZES[size]
    pet = pet_grid(preset)
    place = _placement(preset, pet, rng)
    scanner = SCANNERS[int(rng.integers(len(SCANNERS)))]
    anatomy = anat.sample_anatomy(place, rng)

    def suv(key: str) -> float:
        return float(rng.uniform(*UPTAKE[tracer][_uptake_key(key)]))

    body = anat.body_mask(pet, place)
    activity = np.zeros(pet.shape_zyx, dtype=np.float32)
    activity[body] = suv("body")
    ct = np.full(pet.shape_zyx, HU["air"], dtype=np.float32)
    ct[body] = HU["body"]
    for shapes, key in ((anat.LUNGS, "lung"), (anat.BONE, "bone")):
        for shape in shapes:
            anat.paint(activity, pet, shape, place, suv(key))
            anat.paint(ct, pet, shape, place, HU[key])
    for name, shape in {**anatomy.organs, **anatomy.extras}.items():
        anat.paint(activity, pet, shape, place, suv(name))
        anat.paint(ct, pet, shape, place, HU.get(name, 50.0))
    activity *= body

    lesion_map, lesions = _add_lesions(rng, tracer, disease, preset, pet, anatomy, body, activity)

    fwhm = scanner.fwhm_mm * preset.psf_scale
    noisy = scan(activity, pet, scanner, fwhm, rng)
    for row, snr in zip(lesions, lesion_snr(lesion_map, activity, noisy, pet, fwhm), strict=True):
        row["rose_snr"] = round(snr, 1)
    ct += rng.normal(0, 15, ct.shape).astype(np.float32)
    patient, study = f"SYN{tracer.upper()}_{index:04d}", "study_01"
    return PhantomCase(
        patient_id=patient,
        study=study,
        tracer=tracer,
        disease=disease,
        scanner=scanner,
        psf_fwhm_mm=round(fwhm, 2),
        pet_grid=pet,
        ct_grid=ct_grid(pet, preset, place),
        anatomy=anatomy,
        suv=np.clip(noisy, 0, None).astype(np.float32),
        ct=np.clip(ct, -1024, 3000).astype(np.int16),
        seg=(lesion_map > 0).astype(np.uint8),
        lesions=[{"patient_id": patient, "study": study, **row} for row in lesions],
        activity=activity,
        lesion_map=lesion_map,
    )


def scan(
    activity: np.ndarray, pet: anat.Grid, scanner: Scanner, fwhm_mm: float, rng: np.random.Generator
) -> np.ndarray:
    """The scanner: Gaussian PSF, Poisson counts, then a light reconstruction filter (0.5 voxel).

    Args:
        activity: noise-free SUV (z, y, x).
        pet: its grid.
        scanner: count level.
        fwhm_mm: PSF full width at half maximum (mm).
        rng: random generator (Poisson draws).

    Returns:
        float32 SUV (z, y, x), not yet clipped at 0.
    """
    blurred = gaussian_filter(activity, sigma=fwhm_mm / 2.3548 / np.array(pet.spacing_xyz)[::-1])
    counts = rng.poisson(np.clip(blurred, 0, None) * scanner.counts_per_suv)
    return gaussian_filter(counts.astype(np.float32) / scanner.counts_per_suv, sigma=RECON_SIGMA)
