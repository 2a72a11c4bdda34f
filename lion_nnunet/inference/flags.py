"""The flag score of a case: which predictions a reviewer should look at first, and why, in words.

Each term measures one reason to distrust a prediction (:data:`TERMS`, documented as a table in
docs/inference.md). A term whose value reaches its threshold fires: it adds
``weight x (1 + log2(value / threshold))`` points and one sentence per finding to the reasons
(logarithmic, so a larger finding still ranks higher while one term cannot drown the others); a
term below its threshold adds nothing. The score is the sum (0 = nothing to flag); cases are
reviewed highest first. The reasons name each flagged lesion once, with its volume and every
finding on it ("lesion 2 (4.1 ml): confidence 0.31 < 0.5; touches the kidneys"), so the lesion
volumes in the reasons never add up to more than the TMTV; case-wide findings (TMTV, lesion
count, hot spots, misplaced organs) follow, one sentence each. A term whose input is missing
(no probabilities, one fold, no organ map, no liver) is skipped, and says so nowhere: it cannot
fire.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cc3d
import numpy as np
from scipy import ndimage

from lion_nnunet.labels import HOT_ORGANS, REFERENCE_ORGAN, LabelSet

from .anatomy import Misplaced
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
#: At most this many flagged lesions are named one by one; the rest in one sentence.
MAX_NAMED_LESIONS = 5


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
    FlagTerm("misplaced_organs", "volume of the organ map in anatomically impossible places "
             "(`anatomy.misplaced_organs`: e.g. kidneys above the heart); needs an organ map",
             "ml", 1.0, 2.0),
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


def _hot_organs_touched(
    cc: np.ndarray, n: int, organs: np.ndarray, label_set: LabelSet
) -> dict[int, list[str]]:
    """Lesion id (of ``cc``) -> the hot organs it lies in or touches by a face (sorted names)."""
    hot = {label_set.label_of(n): n for n in HOT_ORGANS.get(label_set.tracer, ())
           if n in label_set.organ_names}  # fmt: skip
    if not hot or not n:
        return {}
    stats = cc3d.statistics(cc)
    out: dict[int, list[str]] = {}
    for i in range(1, n + 1):
        bbox = stats["bounding_boxes"][i]
        grown = tuple(slice(max(0, b.start - 1), min(s, b.stop + 1))
                      for b, s in zip(bbox, cc.shape, strict=True))  # fmt: skip
        touched = sorted({hot[int(v)] for v in np.unique(organs[grown][ndimage.binary_dilation(
            cc[grown] == i)]) if int(v) in hot})  # fmt: skip
        if touched:
            out[i] = touched
    return out


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
    misplaced: Sequence[Misplaced] | None = None,
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
        misplaced: the organ map's parts in anatomically impossible places
            (:func:`lion_nnunet.inference.anatomy.misplaced_organs`), or None (term skipped).

    Returns:
        :class:`Flags`: score, reasons, and each term's value (None where skipped).
    """
    tumor = np.asarray(tumor) > 0
    voxel_ml = float(np.prod(spacing_zyx)) / 1000.0
    lesions = list(report.get("lesions") or [])
    values: dict[str, float | None] = dict.fromkeys(TERMS)
    found: dict[int, list[str]] = {}  # lesion id -> findings on it
    volume: dict[int, float] = {}  # lesion id -> ml
    for k, les in enumerate(lesions, start=1):
        volume[int(les.get("lesion_id") or k)] = float(les["volume_ml"])
    cc, n = cc3d.connected_components(tumor.astype(np.uint8), connectivity=CONNECTIVITY,
                                      return_N=True)  # fmt: skip
    mask_ml = np.bincount(cc.ravel(), minlength=n + 1) * voxel_ml  # same ids as the report's

    def note(lesion_id: int, finding: str) -> None:
        found.setdefault(lesion_id, []).append(finding)
        if lesion_id not in volume:
            volume[lesion_id] = float(mask_ml[lesion_id]) if lesion_id <= n else 0.0

    def ids(keep) -> list[int]:
        return [int(les.get("lesion_id") or k) for k, les in enumerate(lesions, start=1)
                if keep(les)]  # fmt: skip

    if lesions and all(les.get("confidence") is not None for les in lesions):
        low = ids(lambda les: les["confidence"] < LOW_CONFIDENCE)
        values["low_confidence"] = sum(volume[i] for i in low)
        if term_points(TERMS["low_confidence"], values["low_confidence"]):
            for i, les in zip(ids(lambda les: True), lesions, strict=True):
                if i in low:
                    note(i, f"confidence {les['confidence']:.2f} < {LOW_CONFIDENCE:g}")
    if lesions and all(les.get("fold_agreement") is not None for les in lesions):
        missed = ids(lambda les: les["fold_agreement"] < 1)
        values["fold_disagreement"] = sum(volume[i] for i in missed)
        if term_points(TERMS["fold_disagreement"], values["fold_disagreement"]):
            for i, les in zip(ids(lambda les: True), lesions, strict=True):
                if i in missed:
                    note(i, f"missed by a fold (fold agreement {les['fold_agreement']:.2f})")
    if organs is not None and label_set is not None:
        touched = _hot_organs_touched(cc, n, np.asarray(organs), label_set)
        values["hot_organ"] = float(sum(mask_ml[i] for i in touched))
        if term_points(TERMS["hot_organ"], values["hot_organ"]):
            for i, names in touched.items():
                note(i, "touches the " + " and ".join(x.replace("_", " ") for x in names))
    body = body_mask(suv)
    outside_ml = np.bincount(cc[tumor & ~body], minlength=n + 1) * voxel_ml
    values["outside_body"] = float(outside_ml.sum())
    if term_points(TERMS["outside_body"], values["outside_body"]):
        for i in np.nonzero(outside_ml)[0]:
            note(int(i), f"{outside_ml[i]:.1f} ml of it outside the body (SUV < {BODY_SUV:g})")
    reasons = _lesion_sentences(found, volume)
    tmtv = float(report.get("tmtv_ml") or 0.0)
    values["tmtv"] = tmtv
    if term_points(TERMS["tmtv"], tmtv):
        reasons.append(f"TMTV {tmtv:.0f} ml is above {TERMS['tmtv'].threshold:g} ml")
    count = int(report.get("lesion_count") or 0)
    values["lesion_count"] = float(count)
    if term_points(TERMS["lesion_count"], count):
        reasons.append(f"{count} lesions (at least {TERMS['lesion_count'].threshold:g})")
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
    if misplaced is not None:
        values["misplaced_organs"] = sum(m.ml for m in misplaced)
        if term_points(TERMS["misplaced_organs"], values["misplaced_organs"]):
            reasons += [m.sentence() for m in misplaced]
    score = sum(term_points(TERMS[name], value) for name, value in values.items())
    rounded = {k: None if v is None else round(v, 3) for k, v in values.items()}
    return Flags(round(score, 2), reasons, rounded)


def _lesion_sentences(found: Mapping[int, list[str]], volume: Mapping[int, float]) -> list[str]:
    """A sentence per flagged lesion, largest first, at most MAX_NAMED_LESIONS; the rest in one."""
    order = sorted(found, key=lambda i: (-volume[i], i))
    out = [f"lesion {i} ({volume[i]:.1f} ml): {', '.join(found[i])}"
           for i in order[:MAX_NAMED_LESIONS]]  # fmt: skip
    rest = order[MAX_NAMED_LESIONS:]
    if rest:
        out.append(f"{len(rest)} more flagged lesions ({sum(volume[i] for i in rest):.1f} ml)")
    return out


def markdown_table() -> str:
    """The flag terms as a Markdown table (docs/inference.md holds it; a test compares)."""
    rows = ["| term | value (formula) | threshold | weight |", "|---|---|---|---|"]
    for t in TERMS.values():
        rows.append(f"| `{t.name}` | {t.formula} | {t.threshold:g} {t.unit} | {t.weight:g} |")
    return "\n".join(rows)
