"""PERCIST 1.0 quantities and rules: lean body mass, SUL, SULpeak, the liver reference, categories.

Sources: Wahl RL, Jacene H, Kasamon Y, Lodge MA. From RECIST to PERCIST: evolving considerations
for PET response criteria in solid tumors. J Nucl Med 2009;50:122S-150S (Table 1 and Appendix);
O JH, Lodge MA, Wahl RL. Practical PERCIST: a simplified guide to PET response criteria in solid
tumors 1.0. Radiology 2016;280:576-584. docs/response.md states each rule with its source.

Arrays are numpy (z, y, x) with spacing (z, y, x) in mm; physical coordinates are LPS (x, y, z)
mm as SimpleITK gives them (x towards the patient's left, so the right liver lobe has low x).

The rules themselves are in :mod:`lion_nnunet.analysis.percist_rules`.

Examples:
    >>> round(lbm_janmahasatian(70.0, 175.0, "M"), 2)
    55.86
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import distance_transform_edt

from lion_nnunet.errors import LionError
from lion_nnunet.inference.peak_sphere import peak

#: SULpeak sphere: 1 cm^3, radius (3 / (4 pi))^(1/3) cm = 6.20 mm (Wahl 2009).
PEAK_VOLUME_ML = 1.0
PEAK_RADIUS_MM = (3.0 * PEAK_VOLUME_ML * 1000.0 / (4.0 * math.pi)) ** (1.0 / 3.0)
#: Liver reference: a 3 cm diameter sphere in the right lobe (Wahl 2009).
LIVER_RADIUS_MM = 15.0
#: The liver sphere keeps at least this distance (mm) from any tumor voxel (sphere edge to lesion).
LIVER_LESION_MARGIN_MM = 10.0
#: ΔTMTV category limit (LION's convention): a change of 30 % or more.
TMTV_CHANGE = 0.30

LBM_FORMULAS = ("janmahasatian", "james")
SEXES = ("M", "F")


# -- lean body mass and SUL ---------------------------------------------------------------------


def _check_patient(weight_kg: float, height_cm: float, sex: str) -> str:
    if not (weight_kg and 20 <= weight_kg <= 350):
        raise LionError(f"weight {weight_kg!r} kg is not plausible; give --weight-kg (20-350 kg)")
    if not (height_cm and 100 <= height_cm <= 250):
        raise LionError(f"height {height_cm!r} cm is not plausible; give --height-cm (100-250 cm)")
    sex = str(sex or "").upper()[:1]
    if sex not in SEXES:
        raise LionError(f"sex {sex!r} is not M or F; give --sex M or --sex F")
    return sex


def lbm_janmahasatian(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body mass (kg), Janmahasatian et al., Clin Pharmacokinet 2005;44:1051-1065.

    Male: 9270 * W / (6680 + 216 * BMI); female: 9270 * W / (8780 + 244 * BMI); BMI = W / H^2
    with W in kg and H in m. PERCIST recommends it over James (no paradox in obesity).
    """
    sex = _check_patient(weight_kg, height_cm, sex)
    bmi = weight_kg / (height_cm / 100.0) ** 2
    if sex == "M":
        return 9270.0 * weight_kg / (6680.0 + 216.0 * bmi)
    return 9270.0 * weight_kg / (8780.0 + 244.0 * bmi)


def lbm_james(weight_kg: float, height_cm: float, sex: str) -> float:
    """Lean body mass (kg), James 1976: male 1.10 W - 128 (W/H)^2, female 1.07 W - 148 (W/H)^2.

    W in kg, H in cm. Falls for very heavy patients (its known flaw); kept for older studies.
    """
    sex = _check_patient(weight_kg, height_cm, sex)
    if sex == "M":
        return 1.10 * weight_kg - 128.0 * (weight_kg / height_cm) ** 2
    return 1.07 * weight_kg - 148.0 * (weight_kg / height_cm) ** 2


def lean_body_mass(weight_kg: float, height_cm: float, sex: str, formula: str = "janmahasatian"):
    """Lean body mass (kg) by ``formula`` ("janmahasatian" or "james")."""
    if formula not in LBM_FORMULAS:
        raise LionError(f"unknown LBM formula {formula!r}; choose from {', '.join(LBM_FORMULAS)}")
    lbm = (lbm_james if formula == "james" else lbm_janmahasatian)(weight_kg, height_cm, sex)
    if lbm <= 0:
        raise LionError(
            f"the {formula} formula gives a lean body mass of {lbm:.1f} kg for {weight_kg} kg and "
            f"{height_cm} cm; use --lbm janmahasatian"
        )
    return float(lbm)


def sul_factor(weight_kg: float, lbm_kg: float) -> float:
    """SUL = SUVbw * LBM / weight: the factor that turns SUVbw into SUL (unitless)."""
    return float(lbm_kg) / float(weight_kg)


# -- spheres: SULpeak and the liver reference ---------------------------------------------------


def sphere_offsets(radius_mm: float, spacing_zyx) -> np.ndarray:
    """(n, 3) integer (z, y, x) offsets of the voxels whose centres lie within ``radius_mm``
    (the liver's 3 cm sphere; SULpeak uses the exact 1 ml sphere of :func:`sul_peak`)."""
    spacing = np.asarray(spacing_zyx, float)
    half = np.floor(radius_mm / spacing).astype(int)
    grids = np.meshgrid(*[np.arange(-h, h + 1) for h in half], indexing="ij")
    offsets = np.stack([g.ravel() for g in grids], axis=1)
    inside = ((offsets * spacing) ** 2).sum(1) <= radius_mm**2 + 1e-9
    return offsets[inside]


def sul_peak(sul: np.ndarray, lesion: np.ndarray, spacing_zyx) -> tuple[float, tuple[int, ...]]:
    """SULpeak of one lesion: the highest mean SUL in a 1 cm^3 sphere centred on a lesion voxel.

    The sphere is exactly 1 ml on any grid (each voxel weighted by its share inside it,
    :mod:`lion_nnunet.inference.peak_sphere`; report.json's ``suv_peak`` uses the same); it may
    reach beyond the lesion, only its centre must be a lesion voxel (PERCIST: the peak sphere is
    placed on the hottest part of the tumor). Returns (SULpeak, (z, y, x) index of its centre).
    """
    if not np.any(lesion):
        raise ValueError("empty lesion mask")
    return peak(sul, lesion, spacing_zyx, PEAK_VOLUME_ML)


@dataclass(frozen=True)
class LiverReference:
    """Liver SUL in the reference sphere: mean and SD (sample, ddof=1), where it was placed."""

    sul_mean: float
    sul_sd: float
    centre_zyx: tuple[int, int, int] | None  # sphere centre, voxel index (z, y, x); None if given
    voxels: int
    source: str  # "liver mask" or "--liver-reference"

    @property
    def measurability_threshold(self) -> float:
        """1.5 x liver SULmean + 2 x SD: a baseline lesion below it is not measurable."""
        return 1.5 * self.sul_mean + 2.0 * self.sul_sd


def physical_x(shape_zyx, origin_xyz, spacing_xyz, direction) -> np.ndarray:
    """Physical x (mm, LPS) of every voxel, numpy (z, y, x): a read-only broadcast view.

    With the usual axis-aligned direction x depends on the column alone, so this holds one row
    of numbers however large the image.
    """
    d = np.asarray(direction, float).reshape(3, 3)
    x = np.full((1, 1, 1), float(origin_xyz[0]))
    for col, axis in ((0, 2), (1, 1), (2, 0)):  # image axis i, j, k = numpy axis 2, 1, 0
        if d[0, col] != 0.0:
            shape = [1, 1, 1]
            shape[axis] = shape_zyx[axis]
            steps = np.arange(shape_zyx[axis], dtype=np.float64).reshape(shape)
            x = x + d[0, col] * spacing_xyz[col] * steps
    return np.broadcast_to(x, tuple(shape_zyx))


def liver_reference(
    sul: np.ndarray,
    liver: np.ndarray,
    tumor: np.ndarray,
    spacing_zyx,
    x_mm: np.ndarray,
    where: str = "study",
) -> LiverReference:
    """SULmean and SD in a 3 cm sphere in the right liver lobe, placed away from lesions.

    Candidate centres are liver voxels where the whole sphere lies in the liver (the nearest
    non-liver voxel more than 15 mm away) and its edge stays >= 10 mm from every tumor voxel.
    The candidate nearest the centre of the liver's right-most third (voxels whose physical x
    is in the lowest third of the liver's; LPS x grows to the patient's left) is chosen: the
    middle of the right lobe, where a reader puts the sphere. When no voxel qualifies the rule
    is relaxed (sphere clipped to the liver, then also closer to tumor); the caller warns when
    ``voxels`` is below the full sphere's count.

    Args:
        sul: PET in SUL, (z, y, x).
        liver: liver mask (z, y, x).
        tumor: tumor mask (z, y, x).
        spacing_zyx: voxel spacing (z, y, x) mm.
        x_mm: physical x (mm) of each voxel, (z, y, x) (see :func:`physical_x`).
        where: the study, for the error message.
    """
    liver = np.asarray(liver, bool) & ~np.asarray(tumor, bool)
    if liver.sum() < 2:
        raise LionError(
            f"{where}: the organ mask has no liver voxels outside the tumor; give an organ mask "
            "with the liver (lion predict --save-organs) or --liver-reference SUL"
        )
    # Work in the liver's box grown by 2 x the sphere radius + margin: a tumor voxel outside it
    # is farther than that from every liver voxel, so the distances that matter are the same.
    idx = np.argwhere(liver)
    pad = np.ceil(
        (2 * LIVER_RADIUS_MM + LIVER_LESION_MARGIN_MM) / np.asarray(spacing_zyx, float)
    ).astype(int)
    lo, hi = np.maximum(idx.min(0) - pad, 0), np.minimum(idx.max(0) + pad + 1, liver.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    x_mm = np.broadcast_to(x_mm, liver.shape)[box]
    sul, liver, tumor = sul[box], liver[box], np.asarray(tumor, bool)[box]
    depth = distance_transform_edt(liver, sampling=spacing_zyx)
    if np.any(tumor):
        to_tumor = distance_transform_edt(~np.asarray(tumor, bool), sampling=spacing_zyx)
    else:
        to_tumor = np.full(liver.shape, np.inf)
    right_third = liver & (x_mm <= np.percentile(x_mm[liver], 100.0 / 3.0))
    target = np.argwhere(right_third).mean(0)  # (z, y, x) index
    far = to_tumor >= LIVER_RADIUS_MM + LIVER_LESION_MARGIN_MM
    # the sphere holds voxel centres at <= 15 mm, so the nearest non-liver voxel must lie farther
    fits = depth > LIVER_RADIUS_MM + 1e-6
    for allowed in (liver & fits & far, liver & far, liver):
        if allowed.any():
            break
    cand = np.argwhere(allowed)
    dist = ((cand - target) * np.asarray(spacing_zyx, float)) ** 2
    centre = cand[int(np.argmin(dist.sum(1)))]
    offsets = sphere_offsets(LIVER_RADIUS_MM, spacing_zyx)
    idx = centre + offsets
    idx = idx[((idx >= 0) & (idx < np.array(sul.shape))).all(1)]
    idx = idx[liver[idx[:, 0], idx[:, 1], idx[:, 2]]]
    values = sul[idx[:, 0], idx[:, 1], idx[:, 2]].astype(np.float64)
    sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    centre = tuple(int(c + s.start) for c, s in zip(centre, box, strict=True))
    return LiverReference(float(values.mean()), sd, centre, len(values), "liver mask")


# -- LION's volume category ----------------------------------------------------------------


def tmtv_category(baseline_ml: float, followup_ml: float) -> tuple[str, str]:
    """A ΔTMTV category beside PERCIST (LION's convention, not a published criterion).

    "decrease" at <= -30%, "increase" at >= +30%, else "stable"; "new disease" from 0 ml,
    "none" when both are 0 ml.
    """
    if baseline_ml <= 0:
        if followup_ml <= 0:
            return "none", "no tumor volume at either time point"
        return "new disease", f"TMTV rose from 0 to {followup_ml:.1f} ml"
    rel = followup_ml / baseline_ml - 1
    text = f"TMTV {baseline_ml:.1f} -> {followup_ml:.1f} ml ({rel:+.0%})"
    if rel <= -TMTV_CHANGE:
        return "decrease", text + ": a fall of 30% or more"
    if rel >= TMTV_CHANGE:
        return "increase", text + ": a rise of 30% or more"
    return "stable", text + ": within +-30%"
