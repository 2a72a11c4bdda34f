"""Follow-up onto baseline: SimpleITK registration (rigid, then affine) and lesion matching.

The follow-up study is registered onto the baseline (the fixed image): the transform maps
baseline physical points (LPS x, y, z mm) to follow-up points, as SimpleITK's resampling expects.
Registration is driven by a feature image: body (PET > 0.2 SUV) plus organs when both studies
have an organ mask, else the PET clipped to 0..5 SUV (so the bladder and brain do not dominate).

Lesions are 18-connected components (the connectivity of ``lion predict``'s report). They are
matched in two steps: lesions whose overlap after alignment holds at least
:data:`MIN_OVERLAP_FRACTION` of the smaller one are linked (a baseline lesion linked to several
follow-up lesions is a split, several to one a merge); the rest are paired by the distance of
their SULpeak sphere centres with an optimal assignment (scipy's Hungarian
``linear_sum_assignment``), only where the two 1 ml spheres overlap (centres at most
:data:`MAX_DISTANCE_MM` apart): a lesion that vanished and a new one nearby stay apart.
Arrays are numpy (z, y, x).
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
import SimpleITK as sitk
from scipy.optimize import linear_sum_assignment

from lion_nnunet.inference.report import CONNECTIVITY
from lion_nnunet.io import array_to_image

#: Lesions that do not overlap pair only when their registered SULpeak spheres (radius 6.20 mm)
#: overlap: sphere centres at most 2 radii apart (mm).
MAX_DISTANCE_MM = 2.0 * (3.0 * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
#: Overlapping lesions link when the overlap holds at least this share of the smaller one's voxels.
MIN_OVERLAP_FRACTION = 0.1
BODY_SUV = 0.2
#: Most random samples the registration metric draws per resolution level.
SAMPLES = 20_000


@dataclass(frozen=True)
class Alignment:
    """Result of :func:`register`: the affine transform and how well the studies agree.

    ``transform`` maps baseline physical points (mm) to follow-up points. ``ncc_before`` and
    ``ncc_after`` are the normalised cross-correlation of the PETs inside the baseline body before
    registration (same physical frame) and after it.
    """

    transform: sitk.AffineTransform
    driven_by: str
    ncc_before: float
    ncc_after: float

    def to_dict(self) -> dict:
        t = self.transform
        return {
            "method": "SimpleITK rigid (Euler3D) then affine, correlation metric",
            "driven_by": self.driven_by,
            "maps": "baseline physical point (mm) -> follow-up physical point (mm)",
            "matrix": [round(v, 6) for v in t.GetMatrix()],
            "translation_mm": [round(v, 3) for v in t.GetTranslation()],
            "center_mm": [round(v, 3) for v in t.GetCenter()],
            "ncc_before": round(self.ncc_before, 4),
            "ncc_after": round(self.ncc_after, 4),
        }


def feature_image(image: sitk.Image, suv: np.ndarray, organs: np.ndarray | None) -> sitk.Image:
    """The image registration compares: body + 2 x organs (masks given), else PET clipped 0..5."""
    if organs is not None:
        array = (suv > BODY_SUV).astype(np.float32) + 2.0 * (organs > 0).astype(np.float32)
    else:
        array = np.clip(suv, 0.0, 5.0).astype(np.float32)
    return sitk.SmoothingRecursiveGaussian(array_to_image(array, image), 4.0)


def _optimise(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform) -> None:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsCorrelation()
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    fine = min(fixed.GetSpacing()) <= 3.0
    shrinks = [4, 2, 1] if fine else [2, 1]
    voxels = float(np.prod(fixed.GetSize()))
    # at most SAMPLES random points per level: a whole-body image costs what a small one does
    reg.SetMetricSamplingPercentagePerLevel([min(0.1, SAMPLES * s**3 / voxels) for s in shrinks], 1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=4.0, minStep=1e-2, numberOfIterations=100, relaxationFactor=0.5
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(shrinks)
    reg.SetSmoothingSigmasPerLevel([2, 1, 0] if fine else [1, 0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(transform, inPlace=True)
    reg.Execute(fixed, moving)


def _ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    x, y = a[mask].astype(np.float64), b[mask].astype(np.float64)
    x, y = x - x.mean(), y - y.mean()
    denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denom) if denom > 0 else 0.0


def resample_to(
    moving: sitk.Image, reference: sitk.Image, transform: sitk.Transform, labels: bool
) -> np.ndarray:
    """``moving`` on ``reference``'s grid through ``transform``; (z, y, x) array."""
    interp = sitk.sitkNearestNeighbor if labels else sitk.sitkLinear
    out = sitk.Resample(moving, reference, transform, interp, 0.0, moving.GetPixelID())
    return sitk.GetArrayFromImage(out)


def register(
    baseline: sitk.Image,
    baseline_suv: np.ndarray,
    followup: sitk.Image,
    followup_suv: np.ndarray,
    baseline_organs: np.ndarray | None = None,
    followup_organs: np.ndarray | None = None,
) -> Alignment:
    """Register the follow-up onto the baseline: rigid (Euler3D, moments-initialised), then affine.

    Args:
        baseline, followup: the PET images (SimpleITK; give the grids).
        baseline_suv, followup_suv: their voxels in SUV, (z, y, x).
        baseline_organs, followup_organs: organ label maps (z, y, x); used when both are given.
    """
    both = baseline_organs is not None and followup_organs is not None
    fixed = feature_image(baseline, baseline_suv, baseline_organs if both else None)
    moving = feature_image(followup, followup_suv, followup_organs if both else None)
    rigid = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    rigid = sitk.Euler3DTransform(rigid)
    _optimise(fixed, moving, rigid)
    affine = sitk.AffineTransform(3)
    affine.SetCenter(rigid.GetCenter())
    affine.SetMatrix(rigid.GetMatrix())
    affine.SetTranslation(rigid.GetTranslation())
    _optimise(fixed, moving, affine)
    body = baseline_suv > BODY_SUV
    pet = array_to_image(followup_suv.astype(np.float32), followup)
    before = resample_to(pet, baseline, sitk.Transform(3, sitk.sitkIdentity), labels=False)
    after = resample_to(pet, baseline, affine, labels=False)
    return Alignment(
        affine,
        "body and organ masks" if both else "PET",
        _ncc(baseline_suv, before, body),
        _ncc(baseline_suv, after, body),
    )


def connected_lesions(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """18-connected components of a binary mask: (labels 1..n as uint32 (z, y, x), n)."""
    labels, n = cc3d.connected_components(
        (np.asarray(mask) > 0).astype(np.uint8), connectivity=CONNECTIVITY, return_N=True
    )
    return labels.astype(np.uint32), int(n)


@dataclass(frozen=True)
class LesionMatch:
    """Matching of baseline lesions 1..n_b and follow-up lesions 1..n_f.

    ``baseline``/``followup`` map a lesion id to ``(status, change, matched ids)``: status
    "matched", "disappeared" (baseline) or "new" (follow-up); change "one-to-one", "split",
    "merge" or "split-merge" for matched lesions (else ""). ``how`` maps a matched pair to
    "overlap" or "distance".
    """

    baseline: dict[int, tuple[str, str, list[int]]]
    followup: dict[int, tuple[str, str, list[int]]]
    how: dict[tuple[int, int], str]


def _groups(edges: list[tuple[int, int]]) -> list[tuple[set[int], set[int]]]:
    """Connected groups of a bipartite graph given as (baseline id, follow-up id) edges."""
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(n):
        while parent.setdefault(n, n) != n:
            n = parent[n]
        return n

    for i, j in edges:
        parent[find(("b", i))] = find(("f", j))
    groups: dict = {}
    for node in list(parent):
        groups.setdefault(find(node), set()).add(node)
    return [({k for s, k in g if s == "b"}, {k for s, k in g if s == "f"}) for g in groups.values()]


def match_lesions(
    baseline_labels: np.ndarray,
    n_baseline: int,
    followup_labels_on_baseline: np.ndarray,
    n_followup: int,
    baseline_centroids_mm: np.ndarray,
    followup_centroids_mm: np.ndarray,
    max_distance_mm: float = MAX_DISTANCE_MM,
) -> LesionMatch:
    """Match lesions: real overlap after alignment first, then SULpeak sphere distance.

    Args:
        baseline_labels: baseline components (z, y, x), ids 1..n_baseline.
        n_baseline: number of baseline lesions.
        followup_labels_on_baseline: follow-up components resampled onto the baseline grid.
        n_followup: number of follow-up lesions.
        baseline_centroids_mm: (n_baseline, 3) SULpeak sphere centres, baseline physical x, y, z
            (mm).
        followup_centroids_mm: (n_followup, 3) follow-up SULpeak sphere centres mapped into
            baseline space.
        max_distance_mm: pairs farther apart than this are never matched by distance (at most
            :data:`MAX_DISTANCE_MM`: the spheres must overlap).
    """
    max_distance_mm = min(max_distance_mm, MAX_DISTANCE_MM)
    both = (baseline_labels > 0) & (followup_labels_on_baseline > 0)
    pairs, counts = np.unique(
        np.stack([baseline_labels[both], followup_labels_on_baseline[both]], 1).astype(np.int64),
        axis=0, return_counts=True,
    )  # fmt: skip
    size_b = np.bincount(baseline_labels.ravel().astype(np.int64), minlength=n_baseline + 1)
    size_f = np.bincount(followup_labels_on_baseline.ravel().astype(np.int64),
                         minlength=n_followup + 1)  # fmt: skip
    edges = [
        (int(i), int(j)) for (i, j), c in zip(pairs, counts, strict=True)
        if c >= MIN_OVERLAP_FRACTION * min(size_b[i], size_f[j])
    ]  # fmt: skip
    how = dict.fromkeys(edges, "overlap")
    free_b = [i for i in range(1, n_baseline + 1) if i not in {e[0] for e in edges}]
    free_f = [j for j in range(1, n_followup + 1) if j not in {e[1] for e in edges}]
    if free_b and free_f:
        a = np.asarray(baseline_centroids_mm, float)[[i - 1 for i in free_b]]
        b = np.asarray(followup_centroids_mm, float)[[j - 1 for j in free_f]]
        dist = np.linalg.norm(a[:, None, :] - b[None, :, :], axis=2)
        cost = np.where(dist <= max_distance_mm, dist, 1e9)
        for r, c in zip(*linear_sum_assignment(cost), strict=True):
            if dist[r, c] <= max_distance_mm:
                edges.append((free_b[r], free_f[c]))
                how[(free_b[r], free_f[c])] = "distance"
    base = {i: ("disappeared", "", []) for i in range(1, n_baseline + 1)}
    follow = {j: ("new", "", []) for j in range(1, n_followup + 1)}
    for bs, fs in _groups(edges):
        change = {
            (True, True): "one-to-one", (True, False): "split",
            (False, True): "merge", (False, False): "split-merge",
        }[(len(bs) == 1, len(fs) == 1)]  # fmt: skip
        for i in bs:
            base[i] = ("matched", change, sorted(j for b, j in edges if b == i))
        for j in fs:
            follow[j] = ("matched", change, sorted(i for i, f in edges if f == j))
    return LesionMatch(base, follow, how)
