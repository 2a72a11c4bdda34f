"""The flag score of a case: which predictions a reviewer should look at first, and why, in words.

Each term measures one reason to distrust a prediction (:data:`TERMS`, documented as a table in
docs/inference.md). A term whose value reaches its threshold fires: it adds
``weight x (1 + log2(value / threshold))`` points and one sentence per finding to the reasons
(logarithmic, so a larger finding still ranks higher while one term cannot drown the others); a
term below its threshold adds nothing. The score is the sum (0 = nothing to flag); cases are
reviewed highest first. A term whose input is missing (no probabilities, one fold, no organ map,
no liver) is skipped, and says so nowhere: it cannot fire.

Arrays are numpy (z, y, x) on the PET grid, spacing (z, y, x) in mm, SUV in g/ml.

Examples:
    >>> from lion_nnunet.inference.flags import TERMS, term_points
    >>> term_points(TERMS["tmtv"], 3000.0)  # twice the 1500 ml threshold, weight 1
    2.0
    >>> term_points(TERMS["tmtv"], 1000.0)  # below the threshold: nothing
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import cc3d
import numpy as np
from scipy import ndimage

from lion_nnunet.labels import HOT_ORGANS, REFERENCE_ORGAN, LabelSet

from .report import CONNECTIVITY

#: Lesions with a confidence (mean ensemble tumor probability) below this count as uncertain.
LOW_CONFIDENCE = 0.5
#: The body: voxels above this SUV, holes filled (air and the scanner bed are below it).
BODY_SUV = 0.3
#: Unsegmented hot spot: SUV above this multiple of the liver's mean SUV ...
HOT_SPOT_LIVER_MULTIPLE = 3.0
#: ... farther than this from every predicted organ and tumor voxel (partial-volume spill-over).
HOT_SPOT_MARGIN_MM = 8.0
#: A liver mask smaller than this is too small to give a reference SUV (term skipped).
MIN_LIVER_ML = 10.0


@dataclass(frozen=True)
class FlagTerm:
    """One flag-score term: ``weight x (1 + log2(value / threshold))`` once value >= threshold."""

    name: str
    formula: str
    unit: str
    threshold: float
    weight: float


TERMS: dict[str, FlagTerm] = {t.name: t for t in (
    FlagTerm("low_confidence", f"volume of lesions with confidence < {LOW_CONFIDENCE:g}", "ml",
             1.0, 1.0),
    FlagTerm("fold_disagreement", "volume of lesions with fold_agreement < 1 (missed by a fold)",
             "ml", 1.0, 1.0),
    FlagTerm("hot_organ", "volume of lesions inside or touching (a shared face) a hot organ "
             "(`labels.HOT_ORGANS`); needs an organ map", "ml", 1.0, 2.0),
    FlagTerm("tmtv", "TMTV", "ml", 1500.0, 1.0),
    FlagTerm("lesion_count", "lesion count", "lesions", 50.0, 1.0),
    FlagTerm("outside_body", f"tumor volume outside the body (SUV < {BODY_SUV:g}, holes filled)",
             "ml", 0.5, 3.0),
    FlagTerm("unsegmented_hot_spots", f"volume with SUV > {HOT_SPOT_LIVER_MULTIPLE:g} x the "
             f"liver's mean SUV, inside the body, farther than {HOT_SPOT_MARGIN_MM:g} mm from "
             "every organ and tumor voxel; needs a liver mask", "ml", 1.0, 2.0),
)}  # fmt: skip


class Flags(NamedTuple):
    """score (points, 0 = nothing flagged), reasons (sentences), values (term -> value or None)."""

    score: float
    reasons: list[str]
    values: dict[str, float | None]


def term_points(term: FlagTerm, value: float | None) -> float:
    """Points a term adds for ``value``: 0 below the threshold (or None)."""
    if value is None or value < term.threshold:
        return 0.0
    return round(term.weight * (1.0 + math.log2(value / term.threshold)), 2)


def body_mask(suv: np.ndarray) -> np.ndarray:
    """The patient's body: SUV above :data:`BODY_SUV` with enclosed holes (lungs) filled."""
    return ndimage.binary_fill_holes(np.nan_to_num(np.asarray(suv)) > BODY_SUV)


def _lesion_volume(lesions: list[Mapping], keep) -> tuple[float, int]:
    """(summed volume_ml, count) of the lesions for which ``keep(lesion)``."""
    chosen = [les for les in lesions if keep(les)]
    return sum(float(les["volume_ml"]) for les in chosen), len(chosen)


def _hot_organ_ml(
    tumor: np.ndarray, organs: np.ndarray, label_set: LabelSet, voxel_ml: float
) -> tuple[dict[str, float], float]:
    """ml of tumor in lesions inside or touching each hot organ (organ name -> ml, > 0 only),
    and in all of them together (a lesion touching two hot organs counted once)."""
    hot = {label_set.label_of(n): n for n in HOT_ORGANS.get(label_set.tracer, ())
           if n in label_set.organ_names}  # fmt: skip
    if not hot or not tumor.any():
        return {}, 0.0
    cc, n = cc3d.connected_components(tumor.astype(np.uint8), connectivity=CONNECTIVITY,
                                      return_N=True)  # fmt: skip
    stats = cc3d.statistics(cc)
    out: dict[str, float] = {}
    total = 0.0
    for i in range(1, n + 1):
        bbox = stats["bounding_boxes"][i]
        grown = tuple(slice(max(0, b.start - 1), min(s, b.stop + 1))
                      for b, s in zip(bbox, tumor.shape, strict=True))  # fmt: skip
        touched = [hot[int(v)] for v in np.unique(organs[grown][ndimage.binary_dilation(
            cc[grown] == i)]) if int(v) in hot]  # fmt: skip
        ml = float(stats["voxel_counts"][i]) * voxel_ml
        for name in touched:
            out[name] = out.get(name, 0.0) + ml
        total += ml if touched else 0.0
    return out, total


def _hot_spots(
    suv: np.ndarray, tumor: np.ndarray, organs: np.ndarray, body: np.ndarray,
    label_set: LabelSet, spacing_zyx: tuple[float, float, float],
) -> tuple[float, float, float, float] | None:  # fmt: skip
    """(ml, SUV threshold, liver mean SUV, SUVmax) of unsegmented hot voxels; None: no liver."""
    if REFERENCE_ORGAN not in label_set.organ_names:
        return None
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    liver = organs == label_set.label_of(REFERENCE_ORGAN)
    if liver.sum() * voxel_ml < MIN_LIVER_ML:
        return None
    values = np.asarray(suv)  # NaN compares False: never hot
    liver_mean = float(np.nanmean(values[liver].astype(np.float64)))
    threshold = HOT_SPOT_LIVER_MULTIPLE * liver_mean
    covered = (organs > 0) | (tumor > 0)
    hot = (values > threshold) & body & ~covered
    if not hot.any():
        return 0.0, threshold, liver_mean, 0.0
    # distance to the nearest organ or tumor voxel, in a box around the candidates
    pad = [int(np.ceil(HOT_SPOT_MARGIN_MM / s)) + 1 for s in spacing_zyx]
    where = np.nonzero(hot)
    box = tuple(slice(max(0, int(w.min()) - p), min(n, int(w.max()) + 1 + p))
                for w, p, n in zip(where, pad, hot.shape, strict=True))  # fmt: skip
    if covered[box].any():
        far = ndimage.distance_transform_edt(~covered[box], sampling=spacing_zyx)
        far = far > HOT_SPOT_MARGIN_MM
    else:
        far = np.ones(hot[box].shape, bool)
    kept = hot[box] & far
    if not kept.any():
        return 0.0, threshold, liver_mean, 0.0
    return float(kept.sum()) * voxel_ml, threshold, liver_mean, float(values[box][kept].max())


def flag_case(
    report: Mapping,
    suv: np.ndarray,
    tumor: np.ndarray,
    spacing_zyx: tuple[float, float, float],
    organs: np.ndarray | None = None,
    label_set: LabelSet | None = None,
) -> Flags:
    """The flag score of one case and its reasons in words (:data:`TERMS`).

    Args:
        report: the case's report (:func:`lion_nnunet.inference.report.case_report`): its
            ``tmtv_ml``, ``lesion_count`` and ``lesions`` (``volume_ml``, ``confidence``,
            ``fold_agreement``).
        suv: PET in SUV, (z, y, x).
        tumor: binary tumor mask, (z, y, x).
        spacing_zyx: voxel spacing (z, y, x) in mm.
        organs: the model's organ label map (z, y, x) or None (hot-organ and hot-spot terms
            skipped).
        label_set: the model's labels (organ ids and tracer), needed with ``organs``.

    Returns:
        :class:`Flags`: score, reasons, and each term's value (None where skipped).
    """
    tumor = np.asarray(tumor) > 0
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    lesions = list(report.get("lesions") or [])
    values: dict[str, float | None] = dict.fromkeys(TERMS)
    reasons: list[str] = []

    if lesions and all(les.get("confidence") is not None for les in lesions):
        ml, n = _lesion_volume(lesions, lambda les: les["confidence"] < LOW_CONFIDENCE)
        values["low_confidence"] = ml
        if term_points(TERMS["low_confidence"], ml):
            reasons.append(f"{ml:.1f} ml of tumor in {n} lesion(s) has confidence below "
                           f"{LOW_CONFIDENCE:g}")  # fmt: skip
    if lesions and all(les.get("fold_agreement") is not None for les in lesions):
        ml, n = _lesion_volume(lesions, lambda les: les["fold_agreement"] < 1)
        values["fold_disagreement"] = ml
        if term_points(TERMS["fold_disagreement"], ml):
            reasons.append(f"{ml:.1f} ml of tumor in {n} lesion(s) is missed by at least one fold")
    if organs is not None and label_set is not None:
        per_organ, values["hot_organ"] = _hot_organ_ml(tumor, np.asarray(organs), label_set,
                                                       voxel_ml)  # fmt: skip
        if term_points(TERMS["hot_organ"], values["hot_organ"]):
            for name, ml in sorted(per_organ.items(), key=lambda kv: -kv[1]):
                reasons.append(f"{ml:.1f} ml of tumor touches the {name.replace('_', ' ')}")
    tmtv = float(report.get("tmtv_ml") or 0.0)
    values["tmtv"] = tmtv
    if term_points(TERMS["tmtv"], tmtv):
        reasons.append(f"TMTV {tmtv:.0f} ml is above {TERMS['tmtv'].threshold:g} ml")
    count = int(report.get("lesion_count") or 0)
    values["lesion_count"] = float(count)
    if term_points(TERMS["lesion_count"], count):
        reasons.append(f"{count} lesions (at least {TERMS['lesion_count'].threshold:g})")
    body = body_mask(suv)
    outside = float((tumor & ~body).sum()) * voxel_ml
    values["outside_body"] = outside
    if term_points(TERMS["outside_body"], outside):
        reasons.append(f"{outside:.1f} ml of tumor lies outside the body (SUV < {BODY_SUV:g})")
    if organs is not None and label_set is not None:
        spots = _hot_spots(suv, tumor, np.asarray(organs), body, label_set, spacing_zyx)
        if spots is not None:
            ml, threshold, liver_mean, suv_max = spots
            values["unsegmented_hot_spots"] = ml
            if term_points(TERMS["unsegmented_hot_spots"], ml):
                reasons.append(
                    f"{ml:.1f} ml outside organs and tumor above SUV {threshold:.1f} "
                    f"({HOT_SPOT_LIVER_MULTIPLE:g} x liver mean {liver_mean:.1f}), "
                    f"SUVmax {suv_max:.1f}, left unsegmented"
                )
    score = sum(term_points(TERMS[name], value) for name, value in values.items())
    rounded = {k: None if v is None else round(v, 3) for k, v in values.items()}
    return Flags(round(score, 2), reasons, rounded)


def markdown_table() -> str:
    """The flag terms as a Markdown table (docs/inference.md holds it; a test compares)."""
    rows = ["| term | value (formula) | threshold | weight |", "|---|---|---|---|"]
    for t in TERMS.values():
        rows.append(f"| `{t.name}` | {t.formula} | {t.threshold:g} {t.unit} | {t.weight:g} |")
    return "\n".join(rows)
