"""Response assessment of two studies of one patient: matching, ΔTMTV and PERCIST 1.0.

:func:`load_study` reads a PET in SUVbw with its tumor mask and optional organ mask (the tracer's
LION label ids, as ``lion predict --save-organs`` writes them); :func:`assess_response` aligns the
follow-up onto the baseline, matches lesions, measures per time point and per lesion, and applies
PERCIST (:mod:`percist`); :func:`write_response` writes ``response.json``, ``response.csv`` and
``response.png`` (schema in docs/response.md). Arrays are numpy (z, y, x); centroids are physical
LPS (x, y, z) mm of each study's own image.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import find_objects

from lion_nnunet.analysis import percist as pc
from lion_nnunet.analysis import percist_rules as pr
from lion_nnunet.analysis.blood_pool import BloodPool, blood_pool, read_aorta
from lion_nnunet.analysis.response_masks import read_structure
from lion_nnunet.analysis.response_match import (
    MAX_DISTANCE_MM,
    Alignment,
    LesionMatch,
    connected_lesions,
    match_lesions,
    register,
    resample_to,
)
from lion_nnunet.analysis.response_sites import measure_sites, secondary_sum, sites_in_liver
from lion_nnunet.case_ids import autopet_patient_id, sanitize_case_id
from lion_nnunet.errors import LionError
from lion_nnunet.inference.peak_sphere import sphere_weights
from lion_nnunet.inference.plausibility import read_pet
from lion_nnunet.inference.report import _nearest_organ, rounded
from lion_nnunet.io import (
    array_to_image,
    geometry_mismatch,
    read_image,
    voxel_volume_ml,
    write_csv,
    write_json,
)
from lion_nnunet.labels import HOT_ORGANS, get_label_set

log = logging.getLogger(__name__)

RESPONSE_JSON = "response.json"
RESPONSE_CSV = "response.csv"
RESPONSE_PNG = "response.png"
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class Study:
    """One PET study: the image (grid), SUV voxels, tumor and organ masks, all (z, y, x)."""

    name: str
    image: sitk.Image
    suv: np.ndarray
    tumor: np.ndarray
    organs: np.ndarray | None
    patient_id: str | None
    aorta: np.ndarray | None = None  # on the PET's grid, for the blood pool
    notes: tuple[str, ...] = ()  # lion predict's warnings about the case (report.json)
    liver: np.ndarray | None = None  # a liver mask given apart (any grid, resampled to the PET)
    corrected: bool = False  # the tumor mask is a reader's correction (tumor_corrected.nii.gz)


def patient_id_of(pet: str | Path) -> str | None:
    """The patient of a PET file when its name tells: autoPET layout or an autoPET III/IV name.

    ``<patient>/<study>/SUV.nii.gz`` -> ``<patient>``; ``fdg_0168f65af8_04-04-2003..._0000.nii.gz``
    -> ``fdg_0168f65af8``; anything else -> None (unknown, not checked).
    """
    path = Path(pet)
    if path.name == "SUV.nii.gz" and path.parent.parent.name:
        return sanitize_case_id(path.parent.parent.name)
    stem = path.name.removesuffix(".gz").removesuffix(".nii").removesuffix("_0000")
    patient = autopet_patient_id(stem)
    return patient if patient != sanitize_case_id(stem) else None


def load_study(
    pet: str | Path,
    tumor: str | Path,
    organs: str | Path | None = None,
    what: str = "baseline",
    aorta: str | Path | None = None,
    liver: str | Path | None = None,
) -> Study:
    """Read and check one study: PET in SUVbw, tumor mask and organ mask on the PET's grid.

    Raises:
        LionError: a file is missing/unreadable, the PET is not plausible SUV (the project's
            :func:`lion_nnunet.inference.plausibility.read_pet`), or a mask is on another grid.
    """
    image, suv, _ = read_pet(pet, f"{what} PET")  # warnings are logged by the check
    masks = []
    for path, kind in ((tumor, "tumor mask"), (organs, "organ mask")):
        if path is None:
            masks.append(None)
            continue
        mask = read_image(path, f"{what} {kind}")
        problem = geometry_mismatch(image, mask)
        if problem:
            raise LionError(
                f"{path}: {what} {kind} is not on its PET's grid ({problem}); give the mask "
                f"written for {pet}"
            )
        masks.append(sitk.GetArrayFromImage(mask))
    tumor_arr = masks[0] > 0
    organs_arr = None if masks[1] is None else masks[1].astype(np.int16)
    aorta_arr = None if aorta is None else read_aorta(aorta, image, what)
    liver_arr = None if liver is None else read_structure(liver, image, what, "liver")
    return Study(str(pet), image, suv, tumor_arr, organs_arr, patient_id_of(pet), aorta_arr,
                 liver=liver_arr)  # fmt: skip


@dataclass(frozen=True)
class ResponseOptions:
    """Patient data and settings of one assessment.

    Args:
        weight_kg: body weight at baseline (kg), the weight the baseline SUV was computed with.
        height_cm: height (cm).
        sex: "M" or "F".
        followup_weight_kg: weight at follow-up (kg); when not given SUL uses the baseline
            weight and PERCIST's comparability check fails (NE unless accept_noncomparable).
        followup_height_cm: height at follow-up (cm); default ``height_cm``.
        tracer: "fdg" or "psma": which label id is the liver.
        lbm: "janmahasatian" (default) or "james".
        liver_reference: (SULmean, SD) to use instead of a liver mask, for both time points.
        max_distance_mm: lesions whose SULpeak sphere centres lie farther apart than this (mm)
            after alignment never match by distance (at most 12.4 mm: the spheres overlap).
        baseline_uptake_min, followup_uptake_min: uptake times (min), for PERCIST's check.
        patient_id: name for the outputs; default the patient id read from the paths.
        accept_noncomparable: assess scans that PERCIST's comparability checks fail (else NE).
        same_patient: the user states the two studies are one patient (ids differ or unknown).
    """

    weight_kg: float | None
    height_cm: float | None
    sex: str | None
    followup_weight_kg: float | None = None
    followup_height_cm: float | None = None
    tracer: str = "fdg"
    lbm: str = "janmahasatian"
    liver_reference: tuple[float, float] | None = None
    max_distance_mm: float = MAX_DISTANCE_MM
    baseline_uptake_min: float | None = None
    followup_uptake_min: float | None = None
    patient_id: str | None = None
    accept_noncomparable: bool = False
    same_patient: bool = False

    def __post_init__(self) -> None:
        missing = [
            flag
            for flag, v in (
                ("--weight-kg", self.weight_kg),
                ("--height-cm", self.height_cm),
                ("--sex", self.sex),
            )
            if v in (None, "") or (isinstance(v, float) and np.isnan(v))
        ]
        if missing:
            raise LionError(
                f"SUL needs the patient's weight, height and sex, but {', '.join(missing)} "
                "is missing; give them (e.g. --weight-kg 72 --height-cm 178 --sex M)"
            )
        pc.lean_body_mass(self.weight_kg, self.height_cm, self.sex, self.lbm)  # checks them
        if self.followup_weight_kg is not None or self.followup_height_cm is not None:
            pc.lean_body_mass(
                self.followup_weight_kg or self.weight_kg,
                self.followup_height_cm or self.height_cm,
                self.sex,
                self.lbm,
            )
        get_label_set(self.tracer)
        if not 0 < self.max_distance_mm <= round(MAX_DISTANCE_MM, 2):
            raise LionError(
                f"--max-distance-mm must be > 0 and <= {MAX_DISTANCE_MM:.2f} mm (two 1 ml SULpeak "
                f"spheres must overlap to pair lesions), got {self.max_distance_mm}"
            )
        if self.liver_reference is not None and not (
            len(self.liver_reference) == 2
            and self.liver_reference[0] > 0
            and self.liver_reference[1] >= 0
        ):
            raise LionError(
                f"--liver-reference must be MEAN,SD with MEAN > 0 and SD >= 0 (SUL), got "
                f"{self.liver_reference}"
            )


@dataclass
class ResponseResult:
    """The response.json content plus what the picture needs (not serialised)."""

    data: dict
    baseline: Study
    followup: Study
    baseline_labels: np.ndarray
    followup_labels_on_baseline: np.ndarray
    followup_suv_on_baseline: np.ndarray
    match: LesionMatch
    alignment: Alignment
    extra: dict = field(default_factory=dict)


def check_same_patient(baseline: Study, followup: Study, declared: bool = False) -> None:
    """Refuse two studies unless their paths name one patient or ``declared`` says they are one.

    Raises:
        LionError: the ids differ, or one cannot be read from the paths, and not ``declared``.
    """
    a, b = baseline.patient_id, followup.patient_id
    if declared:
        return
    if a and b and a != b:
        raise LionError(
            f"{followup.name}: the follow-up belongs to patient {b}, the baseline "
            f"({baseline.name}) to patient {a}; give two studies of one patient (or "
            "--same-patient if they are one)"
        )
    if not (a and b):
        unknown = baseline.name if not a else followup.name
        raise LionError(
            f"{unknown}: the patient cannot be read from the path (<patient>/<study>/SUV.nii.gz "
            "or an autoPET name), so the pair cannot be checked to be one patient; give "
            "--same-patient if it is"
        )


def _liver(study: Study, sul: np.ndarray, options: ResponseOptions, what: str):
    if options.liver_reference is not None:
        mean, sd = options.liver_reference
        return pc.LiverReference(float(mean), float(sd), None, 0, "--liver-reference")
    liver_id = get_label_set(options.tracer).label_of("liver")
    if study.liver is not None:
        liver_mask = study.liver
    elif study.organs is None or not np.any(study.organs == liver_id):
        found = "no organ mask" if study.organs is None else f"no label {liver_id} (liver)"
        raise LionError(
            f"{study.name}: the {what} has {found}, so there is no liver reference; give "
            f"--{what}-organs (lion predict --save-organs, {options.tracer} liver = {liver_id}) "
            f"or --{what}-liver (a liver mask on any grid) or --liver-reference MEAN,SD"
        )
    else:
        liver_mask = study.organs == liver_id
    img = study.image
    x_mm = pc.physical_x(study.suv.shape, img.GetOrigin(), img.GetSpacing(), img.GetDirection())
    spacing_zyx = img.GetSpacing()[::-1]
    ref = pc.liver_reference(sul, liver_mask, study.tumor, spacing_zyx, x_mm,
                             study.name)  # fmt: skip
    full = len(pc.sphere_offsets(pc.LIVER_RADIUS_MM, spacing_zyx))
    if ref.voxels < full:
        log.warning(
            "%s: the liver is too small or too close to lesions for a whole 3 cm sphere; the "
            "reference uses %d of %d voxels",
            study.name, ref.voxels, full,
        )  # fmt: skip
    return ref


def _organ_of(study: Study, mask: np.ndarray, box, names: dict[int, str]) -> str | None:
    """The organ a lesion lies in (most of its voxels) or next to; None without an organ map."""
    if study.organs is None:
        return None
    inside = study.organs[box][mask]
    inside = inside[inside > 0]
    if inside.size:
        label = int(np.bincount(inside.astype(np.int64)).argmax())
        return names.get(label, str(label))
    return _nearest_organ(mask, box, study.organs, study.image.GetSpacing()[::-1], names)[0]


def _hot_organ(study: Study, centre, hot: set[int], names: dict[int, str]) -> str | None:
    """The hot organ (brain, bladder, ...) the 1 ml sphere around ``centre`` (z, y, x) reaches."""
    if study.organs is None or not hot:
        return None
    w = sphere_weights(study.image.GetSpacing()[::-1])
    idx = np.argwhere(w > 0) - np.array(w.shape) // 2 + np.asarray(centre)
    idx = idx[((idx >= 0) & (idx < study.organs.shape)).all(1)]
    found = set(study.organs[tuple(idx.T)].tolist()) & hot
    return names[min(found)] if found else None


def _lesions(study: Study, labels: np.ndarray, n: int, sul: np.ndarray, tracer: str) -> list[dict]:
    img = study.image
    spacing_zyx = img.GetSpacing()[::-1]
    voxel_ml = voxel_volume_ml(img)
    ls = get_label_set(tracer)
    names = {label: ls.name_of(label) for label in ls.organ_labels}
    hot = {ls.label_of(o) for o in HOT_ORGANS.get(tracer, ()) if o in ls.organ_names}
    rows = []
    pad = np.ceil(pc.PEAK_RADIUS_MM / np.asarray(spacing_zyx)).astype(int) + 1
    for i, box in enumerate(find_objects(labels, max_label=n), start=1):
        # work in the lesion's box grown by the peak sphere: nothing here touches the whole image
        box = tuple(slice(max(0, s.start - p), min(dim, s.stop + p))
                    for s, p, dim in zip(box, pad, labels.shape, strict=True))  # fmt: skip
        mask = labels[box] == i
        values = study.suv[box][mask].astype(np.float64)
        sul_values = sul[box][mask].astype(np.float64)
        peak, centre_idx = pc.sul_peak(sul[box], mask, spacing_zyx)
        start = np.array([s.start for s in box])
        idx = (np.argwhere(mask).mean(0) + start)[::-1]  # (x, y, z) continuous index
        centre = img.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in idx))
        peak_at = img.TransformIndexToPhysicalPoint(
            tuple(int(c + s0) for c, s0 in zip(centre_idx[::-1], start[::-1], strict=True))
        )
        rows.append(
            {
                "id": i, "volume_ml": rounded(float(mask.sum()) * voxel_ml, "ml"),
                "suv_max": rounded(values.max(), "suv"), "suv_mean": rounded(values.mean(), "suv"),
                "tlg": rounded(float(values.sum()) * voxel_ml, "suv_ml"),
                "tlg_sul": rounded(float(sul_values.sum()) * voxel_ml, "suv_ml"),
                "sul_peak": pr.sul(peak),
                "sul_peak_centre_mm": [round(c, 2) for c in peak_at],
                "centroid_mm": [round(c, 2) for c in centre],
                "organ": _organ_of(study, mask, box, names),
                "peak_sphere_reaches": _hot_organ(study, start + centre_idx, hot, names),
            }
        )  # fmt: skip
    return rows


def _time_point(study, options, weight, sul, liver, lesions, lbm) -> dict:
    voxel_ml = voxel_volume_ml(study.image)
    hottest = max(lesions, key=lambda r: r["sul_peak"]) if lesions else None
    tlg = float(study.suv[study.tumor].astype(np.float64).sum()) * voxel_ml
    centre = None
    if liver.centre_zyx is not None:
        centre = [round(c, 2) for c in study.image.TransformIndexToPhysicalPoint(
            tuple(int(v) for v in liver.centre_zyx[::-1]))]  # fmt: skip
    return {
        "pet": study.name,
        "patient_id": study.patient_id,
        "weight_kg": weight,
        "lbm_kg": round(lbm, 3),
        "sul_factor": round(pc.sul_factor(weight, lbm), 5),
        "tmtv_ml": rounded(float(study.tumor.sum()) * voxel_ml, "ml"),
        "tlg": rounded(tlg, "suv_ml"),
        "tlg_sul": rounded(tlg * pc.sul_factor(weight, lbm), "suv_ml"),
        "lesion_count": len(lesions),
        "suv_max": rounded(study.suv[study.tumor].max(), "suv") if lesions else None,
        "sul_peak": hottest["sul_peak"] if hottest else None,
        "sul_peak_lesion": hottest["id"] if hottest else None,
        "liver_sul_mean": pr.sul(liver.sul_mean),
        "liver_sul_sd": pr.sul(liver.sul_sd),
        "liver_source": liver.source,
        "liver_centre_mm": centre,
        "liver_voxels": liver.voxels,
        "measurability_threshold_sul": pr.sul(liver.measurability_threshold),
        "lesions": lesions,
    }


def _pct(relative: float | None) -> float | None:
    return None if relative is None else round(100.0 * relative, 2)


def _delta(a: float | None, b: float | None) -> dict:
    if a is None or b is None:
        return {"abs": None, "pct": None}
    return {"abs": round(b - a, 4), "pct": round(100.0 * (b / a - 1.0), 2) if a else None}


def _liver_mask(study: Study, tracer: str) -> np.ndarray | None:
    """The study's liver: the mask given apart, else the organ mask's liver label, else None."""
    if study.liver is not None:
        return study.liver
    if study.organs is None:
        return None
    return study.organs == get_label_set(tracer).label_of("liver")


def liver_abnormal(study: Study, liver: pc.LiverReference, tracer: str) -> str:
    """Why the liver cannot be PERCIST's reference ("" when it can): tumor in the liver mask, or
    a liver SULmean outside :data:`percist_rules.LIVER_NORMAL_SUL` (LION's range)."""
    low, high = pr.LIVER_NORMAL_SUL
    if not low <= pr.sul(liver.sul_mean) <= high:
        return f"liver SULmean {pr.sul(liver.sul_mean):.2f} outside {low}-{high}"
    mask = _liver_mask(study, tracer)
    if mask is not None:
        inside = study.tumor & mask
        if inside.any():
            ml = float(inside.sum()) * voxel_volume_ml(study.image)
            return f"{ml:.1f} ml of tumor in the liver"
    return ""


def _sites_not_known_in_liver(p: pr.PercistInput) -> list[str]:
    """The warning (a list of zero or one) when the follow-up has no liver mask (a liver
    reference given as numbers) and a baseline site reads at least the liver mean: a lesion that
    vanished from the liver reads about the liver mean at its site, and without the mask nothing
    says the site lies in the liver (held to liver mean + 2 SD), so CMR is out of reach."""
    liver = pr.sul(p.followup_liver_mean)
    high = [s for s in p.sites if s.sul_peak is not None and pr.sul(s.sul_peak) >= liver]
    if not high:
        return []
    listed = ", ".join(f"{s.lesion} (SULpeak {pr.sul(s.sul_peak):.2f})" for s in high)
    return [
        "the follow-up has no liver mask (--liver-reference gave the liver), so no baseline site "
        "can count as lying in the liver: a lesion gone from the liver reads about the liver "
        "mean at its site and can never be a complete response; the site(s) of baseline "
        f"lesion(s) {listed} read at least the liver mean {liver:.2f}; give --followup-liver "
        "MASK to hold sites in the liver to liver mean + 2 SD"
    ]


def _pool_dict(study: Study, pool: BloodPool | None) -> dict | None:
    if pool is None:
        return None
    centre = study.image.TransformIndexToPhysicalPoint(tuple(int(v) for v in pool.centre_zyx[::-1]))
    return {
        "sul_mean": pr.sul(pool.sul_mean), "sul_sd": pr.sul(pool.sul_sd), "voxels": pool.voxels,
        "centre_mm": [round(c, 2) for c in centre], "where": pool.where,
    }  # fmt: skip


def _percist_input(
    options, b, f, liver_b, liver_f, lesions_b, lesions_f, sites, in_liver=frozenset()
) -> pr.PercistInput:
    """What the PERCIST rules read, from the measured time points, lesions and sites."""
    target = b["sul_peak_lesion"]
    by_id = {r["id"]: r for r in lesions_f}
    non_targets = []
    for r in lesions_b:
        if r["id"] == target:
            continue
        matched = [by_id[j] for j in r["matched_to"]]
        peaks = [m["sul_peak"] for m in matched]
        if sites.get(r["id"]) is not None:
            peaks.append(sites[r["id"]])
        non_targets.append(pr.NonTarget(
            r["id"], r["sul_peak"], max(peaks) if peaks else None, r["tlg_sul"],
            sum(m["tlg_sul"] for m in matched),
        ))  # fmt: skip
    unmatched = tuple(
        pr.Lesion(r["id"], r["sul_peak"], r["volume_ml"], tuple(r["centroid_mm"]))
        for r in lesions_f if r["status"] == "new"
    )  # fmt: skip
    missing = () if options.followup_weight_kg else ("the follow-up weight (--followup-weight-kg)",)
    problems = pr.comparability_problems(
        liver_b.sul_mean, liver_f.sul_mean, options.baseline_uptake_min,
        options.followup_uptake_min, missing,
    )  # fmt: skip
    return pr.PercistInput(
        b["sul_peak"], f["sul_peak"], liver_b.sul_mean, liver_b.sul_sd, liver_f.sul_mean,
        liver_f.sul_sd, unmatched, b["tlg_sul"], f["tlg_sul"],
        tuple(pr.Site(k, None if v is None else pr.sul(v), k in in_liver)
              for k, v in sites.items()),
        tuple(non_targets), noncomparable=problems,
        accept_noncomparable=options.accept_noncomparable,
    )  # fmt: skip


def assess_response(baseline: Study, followup: Study, options: ResponseOptions) -> ResponseResult:
    """Align, match, measure and categorise (PERCIST 1.0 and ΔTMTV); nothing is written.

    Raises:
        LionError: the studies belong to different patients, or a liver reference is missing.
    """
    check_same_patient(baseline, followup, options.same_patient)
    fu_weight = options.followup_weight_kg or options.weight_kg
    lbm_b = pc.lean_body_mass(options.weight_kg, options.height_cm, options.sex, options.lbm)
    fu_height = options.followup_height_cm or options.height_cm
    lbm_f = pc.lean_body_mass(fu_weight, fu_height, options.sex, options.lbm)
    sul_b = baseline.suv * np.float32(pc.sul_factor(options.weight_kg, lbm_b))
    sul_f = followup.suv * np.float32(pc.sul_factor(fu_weight, lbm_f))
    liver_b = _liver(baseline, sul_b, options, "baseline")
    liver_f = _liver(followup, sul_f, options, "followup")
    pool_b = None if baseline.aorta is None else blood_pool(sul_b, baseline.aorta, baseline.image)
    pool_f = None if followup.aorta is None else blood_pool(sul_f, followup.aorta, followup.image)

    alignment = register(baseline.image, baseline.suv, followup.image, followup.suv,
                         baseline.organs, followup.organs)  # fmt: skip
    labels_b, n_b = connected_lesions(baseline.tumor)
    labels_f, n_f = connected_lesions(followup.tumor)
    fu_on_b = resample_to(array_to_image(labels_f, followup.image), baseline.image,
                          alignment.transform, labels=True)  # fmt: skip
    suv_f_on_b = resample_to(array_to_image(followup.suv.astype(np.float32), followup.image),
                             baseline.image, alignment.transform, labels=False)  # fmt: skip
    lesions_b = _lesions(baseline, labels_b, n_b, sul_b, options.tracer)
    lesions_f = _lesions(followup, labels_f, n_f, sul_f, options.tracer)
    inverse = alignment.transform.GetInverse()
    fu_centres = np.array([inverse.TransformPoint(r["centroid_mm"]) for r in lesions_f])
    fu_peaks = np.array([inverse.TransformPoint(r["sul_peak_centre_mm"]) for r in lesions_f])
    match = match_lesions(
        labels_b, n_b, fu_on_b, n_f,
        np.array([r["sul_peak_centre_mm"] for r in lesions_b]).reshape(-1, 3),
        fu_peaks.reshape(-1, 3), options.max_distance_mm,
    )  # fmt: skip
    for rows, states in ((lesions_b, match.baseline), (lesions_f, match.followup)):
        for r in rows:
            status, change, others = states[r["id"]]
            r.update(status=status, change=change, matched_to=others)
    for r in lesions_f:
        if r["status"] == "new":
            r["centroid_in_baseline_mm"] = [round(float(c), 2) for c in fu_centres[r["id"] - 1]]
    sites = measure_sites(labels_b, {r["id"]: r["sul_peak_centre_mm"] for r in lesions_b},
                          baseline.image, followup.image, sul_f, alignment.transform)  # fmt: skip
    for r in lesions_b:
        r["followup_site_sul_peak"] = None if sites[r["id"]] is None else pr.sul(sites[r["id"]])

    b = _time_point(baseline, options, options.weight_kg, sul_b, liver_b, lesions_b, lbm_b)
    f = _time_point(followup, options, fu_weight, sul_f, liver_f, lesions_f, lbm_f)
    b["blood_pool"], f["blood_pool"] = _pool_dict(baseline, pool_b), _pool_dict(followup, pool_f)
    abnormal = liver_abnormal(baseline, liver_b, options.tracer)
    centres = {r["id"]: r["sul_peak_centre_mm"] for r in lesions_b}
    followup_liver = _liver_mask(followup, options.tracer)
    liver_sites = sites_in_liver(centres, followup.image, alignment.transform,
                                 followup_liver)  # fmt: skip
    inputs = _percist_input(options, b, f, liver_b, liver_f, lesions_b, lesions_f, sites,
                            liver_sites)  # fmt: skip
    inputs = replace(
        inputs, liver_abnormal=abnormal,
        baseline_blood_pool=None if pool_b is None else (pool_b.sul_mean, pool_b.sul_sd),
        followup_blood_pool=None if pool_f is None else (pool_f.sul_mean, pool_f.sul_sd),
    )  # fmt: skip
    category, rule, reason = pr.percist_category(inputs)
    tmtv_cat, tmtv_reason = pc.tmtv_category(b["tmtv_ml"], f["tmtv_ml"])
    reasons = [f"PERCIST {category}: {reason}", f"TMTV {tmtv_cat}: {tmtv_reason}"]
    blockers = pr.cmr_blockers(inputs)
    if category != "CMR" and blockers and not lesions_f:
        reasons.append(
            "the follow-up tumor mask is empty, but this is not a complete response: "
            + "; ".join(blockers)
        )
    warnings = list(inputs.noncomparable)
    for study, what in ((baseline, "baseline"), (followup, "follow-up")):
        warnings += [f"{what} prediction (lion predict): {note}" for note in study.notes]
    if abnormal and pool_b is None:
        warnings.append(
            f"the baseline liver is abnormal ({abnormal}) but no aorta mask gives a blood pool; "
            "the liver stays the reference (give --baseline-aorta/--followup-aorta)"
        )
    for rows, what in ((lesions_b, "b"), (lesions_f, "f")):
        warnings += [
            f"lesion {what}{r['id']}: its SULpeak sphere reaches the {r['peak_sphere_reaches']}, "
            "so its SULpeak may hold the organ's uptake"
            for r in rows if r["peak_sphere_reaches"]
        ]  # fmt: skip
    if followup_liver is None or not followup_liver.any():
        warnings += _sites_not_known_in_liver(inputs)
    for pool, what in ((pool_b, "baseline"), (pool_f, "follow-up")):
        if pool is not None and pool.where != "descending aorta":
            warnings.append(f"{what} blood pool: cylinder in the {pool.where}")
    if inputs.noncomparable and options.accept_noncomparable:
        warnings.append("--accept-noncomparable: assessed although the scans are not comparable")
    if alignment.ncc_after < 0.5:
        warnings.append(
            f"the aligned PETs agree poorly (correlation {alignment.ncc_after:.2f}); check "
            "the lesion matches in response.png"
        )
    triggers = pr.new_lesion_triggers(inputs)
    quiet = [r for r in inputs.unmatched if r not in triggers]
    if quiet:
        warnings.append(
            "new lesion(s) below the PMD trigger (>= 0.5 ml and SULpeak >= liver mean + 2 SD), "
            "listed for review: " + ", ".join(
                f"{r.id} ({r.volume_ml:.2f} ml, SULpeak {r.sul_peak:.2f})" for r in quiet)
        )  # fmt: skip
    threshold, threshold_text = inputs.measurability_threshold()
    second_b = secondary_sum(lesions_b, threshold)
    second_f = secondary_sum(lesions_f, None)
    counts = {
        "matched_baseline": sum(r["status"] == "matched" for r in lesions_b),
        "disappeared": sum(r["status"] == "disappeared" for r in lesions_b),
        "new": sum(r["status"] == "new" for r in lesions_f),
        "new_fdg_avid": len(triggers),
        "splits": len({tuple(r["matched_to"]) for r in lesions_b if r["change"] == "split"}),
        "merges": len({tuple(r["matched_to"]) for r in lesions_f if r["change"] == "merge"}),
    }
    data = {
        "schema_version": SCHEMA_VERSION,
        "patient_id": options.patient_id or baseline.patient_id or followup.patient_id,
        "tracer": options.tracer,
        "percist": {
            "category": category,
            "rule": rule,
            "reason": reason,
            "baseline_measurable": pr.sul(b["sul_peak"] or 0) >= threshold,
            "measurability_threshold": threshold_text,
            "sul_peak_baseline": b["sul_peak"],
            "sul_peak_followup": inputs.followup_peak,
            "sul_peak_change": inputs.change,
            "sul_peak_change_pct": inputs.relative_change,
            "sites": [
                {"lesion": s.lesion, "sul_peak": s.sul_peak, "in_liver": s.in_liver}
                for s in inputs.sites
            ],
            "new_lesion_triggers": [
                {
                    "id": r.id,
                    "sul_peak": r.sul_peak,
                    "volume_ml": r.volume_ml,
                    "centroid_mm": list(r.position_mm),
                }
                for r in triggers
            ],
            "non_target_rises": [n.lesion for n in pr.non_target_rises(inputs)],
            "comparable": not inputs.noncomparable,
            "accept_noncomparable": options.accept_noncomparable,
            "secondary_sum": {
                "baseline": second_b,
                "followup": second_f,
                **_delta(second_b["sul_peak_sum"], second_f["sul_peak_sum"]),
            },
        },
        "tmtv": {"category": tmtv_cat, "reason": tmtv_reason},
        "reasons": reasons,
        "warnings": warnings,
        "corrected_masks": {"baseline": baseline.corrected, "followup": followup.corrected},
        "delta": {
            key: _delta(b[key], f[key])
            for key in ("tmtv_ml", "tlg", "lesion_count", "sul_peak", "liver_sul_mean")
        },
        "matching": {
            **counts,
            "max_distance_mm": round(min(options.max_distance_mm, MAX_DISTANCE_MM), 2),
            "connectivity": 18,
        },
        "lbm_formula": options.lbm,
        "height_cm": options.height_cm,
        "sex": str(options.sex).upper()[:1],
        "alignment": alignment.to_dict(),
        "baseline": b,
        "followup": f,
    }
    return ResponseResult(data, baseline, followup, labels_b, fu_on_b, suv_f_on_b, match,
                          alignment)  # fmt: skip


def csv_row(data: dict) -> dict:
    """One response.csv row of a response.json."""
    b, f, d = data["baseline"], data["followup"], data["delta"]
    return {
        "patient_id": data["patient_id"], "baseline": b["pet"], "followup": f["pet"],
        "percist": data["percist"]["category"], "percist_rule": data["percist"]["rule"],
        "tmtv_category": data["tmtv"]["category"],
        "baseline_tmtv_ml": b["tmtv_ml"], "followup_tmtv_ml": f["tmtv_ml"],
        "delta_tmtv_pct": d["tmtv_ml"]["pct"],
        # the SULpeaks PERCIST compared: at follow-up the hottest lesion or baseline site
        "baseline_sul_peak": b["sul_peak"],
        "followup_sul_peak": data["percist"]["sul_peak_followup"],
        "delta_sul_peak_pct": data["percist"]["sul_peak_change_pct"],
        "baseline_lesions": b["lesion_count"], "followup_lesions": f["lesion_count"],
        "new_lesions": data["matching"]["new"], "disappeared": data["matching"]["disappeared"],
        "baseline_liver_sul_mean": b["liver_sul_mean"],
        "followup_liver_sul_mean": f["liver_sul_mean"], "warnings": len(data["warnings"]),
    }  # fmt: skip


def check_output(out_dir: str | Path, overwrite: bool) -> Path:
    """Refuse an existing response.json unless ``overwrite``."""
    out = Path(out_dir)
    if (out / RESPONSE_JSON).exists() and not overwrite:
        raise LionError(f"{out / RESPONSE_JSON}: exists; use --overwrite or another -o")
    if out.exists() and not out.is_dir():
        raise LionError(f"{out}: exists and is not a folder; choose another -o")
    return out


def write_response(result: ResponseResult, out_dir: str | Path) -> dict:
    """Write response.png, response.csv and response.json (last), each atomically."""
    import pandas as pd

    from lion_nnunet.analysis.response_picture import save_response_png

    out = Path(out_dir)
    save_response_png(result, out / RESPONSE_PNG)
    write_csv(pd.DataFrame([csv_row(result.data)]), out / RESPONSE_CSV)
    write_json(result.data, out / RESPONSE_JSON)
    return result.data


def _report_input(report_path: Path, source: str, what: str) -> Path:
    """The PET a report.json names: absolute as is, else found from the working directory, the
    case folder or the folders above it (``lion predict`` records the path it was given)."""
    path = Path(source)
    if path.is_absolute():
        candidates = [path]
    else:
        folder = report_path.parent
        candidates = [Path.cwd() / path, folder / path, *(p / path for p in folder.parents[:3])]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    raise LionError(
        f"{report_path}: its input {source!r} was not found (tried "
        f"{', '.join(str(c) for c in candidates)}); give --{what}-pet"
    )


def prediction_study(
    folder: str | Path,
    what: str,
    pet: str | Path | None = None,
    aorta: str | Path | None = None,
    liver: str | Path | None = None,
    use_corrected: bool = True,
) -> Study:
    """A study from a ``lion predict`` case folder: tumor.nii.gz, organs.nii.gz, report.json.

    The PET is ``pet`` or the report's ``input`` (a NIfTI file, found from any working
    directory; a DICOM folder must be given as ``pet``, e.g. after ``lion convert dicom``). The
    report's ``flag_reasons`` (lion predict's warnings about the case) travel with the study.
    With ``use_corrected`` (the default of ``lion response``), a case corrected in ``lion review
    --serve`` gives its tumor_corrected.nii.gz and the flag reasons of report_corrected.json.
    """
    from lion_nnunet.inference.corrected import case_mask, case_report_path

    folder = Path(folder)
    report_path = folder / "report.json"
    report = {}
    if report_path.is_file():
        report = json.loads(report_path.read_text())
    tumor, corrected = case_mask(folder, use_corrected)
    flagged = report
    if corrected:
        flagged = json.loads(case_report_path(folder, True)[0].read_text())
    if pet is None:
        if not report_path.is_file():
            raise LionError(
                f"{folder}: no report.json, so not a lion predict case folder; give the case "
                f"folder (out/<case_id>) or --{what}-pet with --{what}-tumor"
            )
        source = report.get("input") or ""
        if isinstance(source, list):
            source = source[0] if source else ""
        if not str(source).endswith((".nii", ".nii.gz")):
            raise LionError(
                f"{report_path}: input {source!r} is not a NIfTI PET; give --{what}-pet SUV.nii.gz"
            )
        pet = _report_input(report_path, str(source), what)
    organs = folder / "organs.nii.gz"
    study = load_study(pet, tumor, organs if organs.is_file() else None, what, aorta, liver)
    notes = tuple(str(r) for r in flagged.get("flag_reasons") or [])
    return replace(study, notes=notes, corrected=corrected)
