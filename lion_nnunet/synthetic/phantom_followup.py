"""Later studies of a phantom patient with known lesion changes and a patient shift/rotation.

:func:`synthesize_followup` takes a baseline :class:`PhantomCase` (with its noise-free
``activity``) and returns follow-up ``k`` (study ``study_0{k+1}``): lesions shrink, grow, vanish,
split or appear according to a scenario, the whole patient is moved (a rotation of a few degrees
about the body axis and a shift of several centimetres), and the scanner is applied again (PSF and
fresh Poisson noise). The truth comes with it: one row per lesion correspondence.

Scenarios (by ``(index + k) % 3``), each designed to give one PERCIST category when the
baseline's hottest lesion is measurable:

* ``response`` (PMR): the hottest lesion shrinks to half its volume at 0.35 x its SUV; another
  vanishes, another splits in two (SUV x 0.45), the rest shrink (SUV x 0.45). The drops are
  larger than PERCIST's 30% because blur and partial volume shrink a small lesion's SULpeak
  change (a 40% SUV drop measured as a 25% SULpeak drop on the small grid).
* ``progression`` (PMD): the hottest lesion grows to 1.8 x its volume at 1.5 x its SUV, the others
  stay, and a new lesion (3 ml, SUV 3 x the liver's) appears away from the others and the organs.
* ``complete`` (CMR): every lesion vanishes.

Arrays are numpy (z, y, x); centres are physical LPS (x, y, z) mm of each study's own frame.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy.ndimage import binary_dilation, distance_transform_edt

from lion_nnunet.synthetic import phantom_anatomy as anat
from lion_nnunet.synthetic.phantom_case import (
    PhantomCase,
    lesion_snr,
    organ_label_map,
    scan,
    to_image,
)

SCENARIOS = ("response", "progression", "complete")
EXPECTED_PERCIST = {"response": "PMR", "progression": "PMD", "complete": "CMR"}
NEW_LESION_ML = 3.0


@dataclass(frozen=True)
class Motion:
    """The patient's movement between studies: rotation about z through ``centre_mm``, then shift.

    A baseline point p (mm) lies at ``R (p - c) + c + shift`` in the follow-up frame.
    """

    rotation_deg: float
    shift_mm: tuple[float, float, float]
    centre_mm: tuple[float, float, float]

    def follow(self, p) -> np.ndarray:
        """A baseline physical point (x, y, z mm) in the follow-up frame."""
        a = np.deg2rad(self.rotation_deg)
        r = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        c = np.asarray(self.centre_mm)
        return r @ (np.asarray(p, float) - c) + c + np.asarray(self.shift_mm)

    def resampling_transform(self) -> sitk.Euler3DTransform:
        """Follow-up point -> baseline point (what SimpleITK's Resample needs)."""
        t = sitk.Euler3DTransform()
        t.SetCenter(self.centre_mm)
        t.SetRotation(0.0, 0.0, float(np.deg2rad(self.rotation_deg)))
        t.SetTranslation(tuple(float(v) for v in self.shift_mm))
        return t.GetInverse()


def _centre_mm(grid: anat.Grid, mask: np.ndarray) -> np.ndarray:
    idx = np.argwhere(mask).mean(0)  # (z, y, x)
    return np.array([grid.origin_xyz[a] + grid.spacing_xyz[a] * idx[2 - a] for a in range(3)])


def _box(mask: np.ndarray, pad: int) -> tuple[slice, ...]:
    """The bounding box of ``mask`` grown by ``pad`` voxels (clipped to the array)."""
    idx = np.argwhere(mask)
    lo, hi = idx.min(0) - pad, idx.max(0) + pad + 1
    return tuple(slice(max(0, a), min(n, b)) for a, b, n in zip(lo, hi, mask.shape, strict=True))


def _resize(mask: np.ndarray, factor: float, allowed: np.ndarray, spacing_zyx) -> np.ndarray:
    """``mask`` shrunk or grown to ``factor`` x its volume (at least one voxel), keeping its shape.

    Shrinking keeps the deepest voxels (distance to the lesion's edge, mm); growing adds the
    ``allowed`` voxels closest to the lesion (up to 3 voxels out). Works in the lesion's box.
    """
    box = _box(mask, 4)
    local, ok = mask[box], allowed[box]
    target = max(1, round(float(local.sum()) * factor))
    out = np.zeros_like(mask)
    if factor < 1:
        score = -distance_transform_edt(local, sampling=spacing_zyx)[local]
        keep = np.argwhere(local)[np.argsort(score, kind="stable")[:target]]
        out[box][tuple(keep.T)] = True
        return out
    ring = binary_dilation(local, iterations=3) & ok & ~local
    score = distance_transform_edt(~local, sampling=spacing_zyx)[ring]
    add = np.argwhere(ring)[np.argsort(score, kind="stable")[: target - int(local.sum())]]
    grown = local.copy()
    grown[tuple(add.T)] = True
    out[box] = grown
    return out


def _split(mask: np.ndarray) -> list[np.ndarray] | None:
    """Two pieces of ``mask`` cut by a one-voxel plane through its centroid, or None if too small.

    The plane is perpendicular to the lesion's longest axis; a removed plane keeps the pieces
    apart for 18- and 26-connectivity.
    """
    idx = np.argwhere(mask)
    extent = idx.max(0) - idx.min(0)
    axis = int(np.argmax(extent))
    if extent[axis] < 2:
        return None
    cut = int(np.round(np.median(idx[:, axis])))
    cut = min(max(cut, idx[:, axis].min() + 1), idx[:, axis].max() - 1)
    shape = [1, 1, 1]
    shape[axis] = mask.shape[axis]
    coords = np.arange(mask.shape[axis]).reshape(shape)
    pieces = [mask & (coords < cut), mask & (coords > cut)]
    return pieces if all(p.any() for p in pieces) else None


def _background(activity: np.ndarray, tumor: np.ndarray, mask: np.ndarray) -> float:
    box = _box(mask, 3)
    ring = binary_dilation(mask[box], iterations=2) & ~tumor[box]
    return float(np.median(activity[box][ring])) if ring.any() else 0.0


def _new_lesion(case: PhantomCase, tumor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 3 ml ball in soft tissue: inside the body, >= 40 mm from lesions, clear of organs."""
    grid = case.pet_grid
    spacing = np.array(grid.spacing_xyz)[::-1]
    radius = (3 * NEW_LESION_ML * 1000 / (4 * np.pi)) ** (1 / 3)
    body = anat.body_mask(grid, case.anatomy.place)
    organs = organ_label_map(grid, case.anatomy, list(case.anatomy.organs)) > 0
    inside = distance_transform_edt(body, sampling=spacing) > radius + 10
    clear = distance_transform_edt(~organs, sampling=spacing) > radius + 6
    far = distance_transform_edt(~tumor, sampling=spacing) > 40 if tumor.any() else inside
    candidates = np.argwhere(inside & clear & far)
    if not len(candidates):
        candidates = np.argwhere(inside)
    centre = candidates[int(rng.integers(len(candidates)))]  # (z, y, x) index
    centre_mm = np.array(
        [grid.origin_xyz[a] + grid.spacing_xyz[a] * centre[2 - a] for a in range(3)]
    )
    box, ball = anat.render_ellipsoid(grid, centre_mm, np.full(3, radius))
    out = np.zeros(tumor.shape, dtype=bool)
    out[box] = ball
    return out


def _plan(n: int, hottest: int, scenario: str) -> dict[int, str]:
    """Change of each baseline lesion (0-based component index) under a scenario."""
    if scenario == "complete":
        return dict.fromkeys(range(n), "vanish")
    if scenario == "progression":
        return {i: "grow" if i == hottest else "stable" for i in range(n)}
    others = [i for i in range(n) if i != hottest]
    plan = dict.fromkeys(range(n), "shrink")
    if others:
        plan[others[0]] = "vanish"
    if len(others) > 1:
        plan[others[1]] = "split"
    return plan


def synthesize_followup(
    case: PhantomCase, k: int, rng_seed: int
) -> tuple[PhantomCase, list[dict], Motion]:
    """Follow-up ``k`` (1-based) of a baseline phantom, and its truth rows.

    Args:
        case: the baseline, with ``activity`` (as :func:`synthesize_case` returns it).
        k: follow-up number; the study is ``study_0{k+1}``.
        rng_seed: seeds the changes, the motion and the noise (with the patient index and k).

    Returns:
        (follow-up case, truth rows, motion): one row per baseline-follow-up lesion pair, with
        ``change`` "shrink", "grow", "stable", "split", "vanish" (no follow-up lesion) or "appear"
        (no baseline lesion), volumes (ml), follow-up SUV, centres (mm, each study's own frame),
        the motion and the scenario's expected PERCIST category.
    """
    if case.lesion_map is not None and not np.array_equal(case.seg > 0, case.lesion_map > 0):
        raise ValueError(
            f"{case.patient_id}: its mask leaves out painted lesions (annotate_visible); a "
            "follow-up needs every lesion of the baseline"
        )
    index = int(case.patient_id.rsplit("_", 1)[-1])
    rng = np.random.default_rng([rng_seed, index, 1000 + k])
    scenario = SCENARIOS[(index + k) % len(SCENARIOS)]
    grid = case.pet_grid
    activity = case.activity.copy()
    base_tumor = case.seg > 0
    labels, n = cc3d.connected_components(base_tumor.astype(np.uint8), connectivity=26,
                                          return_N=True)  # fmt: skip
    masks = [labels == i + 1 for i in range(n)]
    suvs = [float(np.max(case.activity[m])) for m in masks]
    hottest = int(np.argmax(suvs)) if n else -1
    ids = [_lesion_id(case, grid, m) for m in masks]
    for m in masks:  # take every lesion out: the background under it is its surroundings'
        activity[m] = _background(case.activity, base_tumor, m)
    # (change, baseline component or None, new mask, SUV)
    pieces: list[tuple[str, int | None, np.ndarray, float]] = []
    body = anat.body_mask(grid, case.anatomy.place)
    spacing = np.array(grid.spacing_xyz)[::-1]
    for i, change in _plan(n, hottest, scenario).items():
        m, suv = masks[i], suvs[i]
        if change == "split":
            parts = _split(m)
            if parts is None:
                change = "shrink"
            else:
                pieces += [("split", i, p, suv * 0.45) for p in parts]
                continue
        if change == "shrink":
            factor = 0.35 if i == hottest else 0.45
            pieces.append(("shrink", i, _resize(m, 0.5, body, spacing), suv * factor))
        elif change == "grow":
            allowed = body & ~binary_dilation(base_tumor & ~m, iterations=2)
            pieces.append(("grow", i, _resize(m, 1.8, allowed, spacing), suv * 1.5))
        elif change == "stable":
            pieces.append(("stable", i, m, suv))
        else:
            pieces.append(("vanish", i, np.zeros_like(m), 0.0))
    if scenario == "progression":
        liver = organ_label_map(grid, case.anatomy, ["liver"]) > 0
        liver_suv = float(np.median(case.activity[liver])) if liver.any() else 2.0
        pieces.append(("appear", None, _new_lesion(case, base_tumor, rng), 3.0 * liver_suv))
    label_map = np.zeros(grid.shape_zyx, dtype=np.uint16)
    for j, (_, _, mask, suv) in enumerate(pieces):
        if mask.any():
            activity[mask] = np.maximum(activity[mask], suv)
            label_map[mask] = j + 1

    centre = _centre_mm(grid, body)
    motion = Motion(
        round(float(rng.uniform(-5, 5)), 2),
        tuple(round(float(v), 1) for v in rng.uniform(25, 45, 3) * rng.choice([-1, 1], 3)),
        tuple(round(float(v), 1) for v in centre),
    )
    moved = {
        name: _move(array, grid, motion, labels=name != "activity")
        for name, array in {"activity": activity, "labels": label_map}.items()
    }
    ct = _move(case.ct.astype(np.float32), grid, motion, labels=False, fill=-1000.0)
    scanned = scan(moved["activity"], grid, case.scanner, case.psf_fwhm_mm, rng)
    snrs = lesion_snr(moved["labels"], moved["activity"], scanned, grid, case.psf_fwhm_mm)
    suv = np.clip(scanned, 0, None)
    study = f"study_{k + 1:02d}"
    seg = moved["labels"] > 0
    voxel_ml = case.voxel_ml
    rows = []
    for j, (change, i, _, suv_j) in enumerate(pieces):
        fmask = moved["labels"] == j + 1
        row = {
            "patient_id": case.patient_id, "baseline_study": case.study, "study": study,
            "scenario": scenario, "expected_percist": EXPECTED_PERCIST[scenario],
            "change": change, "baseline_lesion": "" if i is None else ids[i],
            "followup_lesion": j if fmask.any() else "",
            "baseline_volume_ml": "" if i is None else round(float(masks[i].sum()) * voxel_ml, 4),
            "followup_volume_ml": round(float(fmask.sum()) * voxel_ml, 4),
            "followup_suv": round(suv_j, 2) if fmask.any() else "",
            "rotation_deg": motion.rotation_deg, "shift_x_mm": motion.shift_mm[0],
            "shift_y_mm": motion.shift_mm[1], "shift_z_mm": motion.shift_mm[2],
        }  # fmt: skip
        for axis, name in enumerate("xyz"):
            row[f"baseline_{name}_mm"] = (
                "" if i is None else round(float(_centre_mm(grid, masks[i])[axis]), 1)
            )
            row[f"followup_{name}_mm"] = (
                round(float(_centre_mm(grid, fmask)[axis]), 1) if fmask.any() else ""
            )
        rows.append(row)
    follow = replace(
        case, study=study, suv=suv.astype(np.float32),
        ct=np.clip(ct, -1024, 3000).astype(np.int16), seg=seg.astype(np.uint8),
        lesions=[_lesion_row(r, snrs[r["followup_lesion"]]) for r in rows
                 if r["followup_lesion"] != ""],
        activity=moved["activity"], lesion_map=moved["labels"],
    )  # fmt: skip
    return follow, rows, motion


def _lesion_row(truth: dict, snr: float) -> dict:
    """A follow-up lesion's lesions.csv row (region unknown after the change: empty), with its
    Rose SNR in the follow-up scan (:func:`~lion_nnunet.synthetic.phantom_case.lesion_snr`)."""
    return {
        "patient_id": truth["patient_id"], "study": truth["study"],
        "lesion": truth["followup_lesion"], "region": "", "near_organ": "",
        "volume_ml": truth["followup_volume_ml"], "suv": truth["followup_suv"],
        "center_x_mm": truth["followup_x_mm"], "center_y_mm": truth["followup_y_mm"],
        "center_z_mm": truth["followup_z_mm"], "rose_snr": round(snr, 1),
    }  # fmt: skip


def _lesion_id(case: PhantomCase, grid: anat.Grid, mask: np.ndarray) -> int:
    """The lesions.csv ``lesion`` number of a baseline component (nearest recorded centre)."""
    centre = _centre_mm(grid, mask)
    known = [(r["center_x_mm"], r["center_y_mm"], r["center_z_mm"]) for r in case.lesions]
    return int(
        case.lesions[int(np.argmin(np.linalg.norm(np.array(known) - centre, axis=1)))]["lesion"]
    )


def _move(
    array: np.ndarray, grid: anat.Grid, motion: Motion, labels: bool, fill: float = 0.0
) -> np.ndarray:
    """``array`` after the patient's motion, on the same grid (nearest for labels)."""
    image = to_image(array, grid)
    interp = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    out = sitk.Resample(image, image, motion.resampling_transform(), interp, fill)
    return sitk.GetArrayFromImage(out)


def move_ct_labels(labels: np.ndarray, ct_grid: anat.Grid, motion: Motion) -> np.ndarray:
    """An organ label map on the CT grid after the patient's motion (nearest neighbour)."""
    return _move(labels, ct_grid, motion, labels=True)
