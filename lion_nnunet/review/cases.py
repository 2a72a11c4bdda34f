"""One record per predicted case, read from ``lion predict``'s output folder, in review order.

A case is a folder ``PRED/<case_id>/`` with a ``report.json`` (written last by ``lion predict``,
so a folder without one is an unfinished case and is left out). From the report: TMTV (ml),
lesion count, SUVmax (SUV), the lesions (volume in ml, SUVmax, nearest organ, and, in reports
that have them, ``confidence`` and ``fold_agreement``, both 0..1), and the case's ``flag_score``
and ``flag_reasons``. Pictures: ``mip_coronal.png`` and ``mip_sagittal.png`` when the case has
them, else the older side-by-side ``mip.png``.

Review order (:func:`review_order`):

* without ground truth: highest ``flag_score`` first; among equal scores, more unsegmented
  hot-spot volume first (the flag term ``unsegmented_hot_spots``, in ml, counted even below its
  threshold: a case whose hot spots suggest missed disease does not sort last just because
  nothing was predicted), then largest TMTV first; cases whose report has no flag score
  (predicted before flag scores existed) come after every flagged case, largest TMTV first, as
  over-segmentation is the commonest failure of a model on new data;
* with ground truth (``--gt``): worst Dice first (Dice from :func:`lion_nnunet.analysis.evaluate.
  evaluate`, the project's metric). A case whose ground truth has no tumor has no Dice (NaN, the
  autoPET convention); it is ranked as Dice 1 when nothing was predicted and as Dice 0 when
  something was (every predicted voxel is then a false positive); cases without ground truth
  come last. Ties keep the flag-score order.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from lion_nnunet.errors import LionError

log = logging.getLogger(__name__)

REPORT = "report.json"
#: Pictures of a case, in the order shown; ``mip.png`` (both views in one) when neither exists.
VIEWS = ("mip_coronal.png", "mip_sagittal.png")
FALLBACK_VIEW = "mip.png"
#: Lesion table rows kept per case (largest first): the page stays small with noisy predictions.
MAX_LESIONS = 20


def case_folders(pred_dir: str | Path) -> list[Path]:
    """The finished case folders (those with a report.json) of a prediction folder, sorted."""
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise LionError(
            f"{pred_dir}: prediction folder not found; give the -o folder of lion predict"
        )
    folders = sorted(p.parent for p in pred_dir.glob(f"*/{REPORT}"))
    if not folders:
        raise LionError(
            f"{pred_dir}: no case outputs (expected <case_id>/{REPORT} folders as lion predict "
            "writes them); give the -o folder of a finished lion predict run"
        )
    return folders


def _number(value, digits: int = 3) -> float | None:
    """A finite float rounded to ``digits``, else None (JSON has no NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return round(value, digits) if math.isfinite(value) else None


def _lesion(raw: dict) -> dict:
    return {
        "id": raw.get("lesion_id"),
        "volume_ml": _number(raw.get("volume_ml")),
        "suv_max": _number(raw.get("suv_max"), 2),
        "organ": raw.get("nearest_organ"),
        "organ_mm": _number(raw.get("distance_to_organ_mm"), 1),
        "confidence": _number(raw.get("confidence")),
        "fold_agreement": _number(raw.get("fold_agreement")),
        "centroid_mm": _point(raw.get("centroid_mm")),
    }


def _point(value) -> list[float] | None:
    """Three finite numbers (a position in mm), else None."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return None
    point = [_number(v, 1) for v in value]
    return None if None in point else point


def read_case(case_dir: Path, use_corrected: bool = False) -> dict:
    """The record of one case folder (see the module docstring); pictures as paths.

    Keys: ``case_id``, ``tmtv_ml``, ``lesion_count``, ``suv_max``, ``flag_score`` (None when the
    report has none), ``flag_reasons`` (list of str), ``hot_spots_ml`` (the flag term
    ``unsegmented_hot_spots``, None where not measured), ``lesions`` (largest :data:`MAX_LESIONS`),
    ``lesions_shown``, ``pictures`` (list of existing PNG paths), ``corrected`` (True when the
    numbers are those of a reader's correction: ``use_corrected`` and report_corrected.json),
    ``model`` (the installed model's name, else the model report.json names; None when it
    names none) and ``lion_version`` (of the run that wrote the report).
    A lesion's ``centroid_mm`` is report.json's: physical LPS coordinates in mm.
    """
    from lion_nnunet.inference.corrected import case_report_path

    path, corrected = case_report_path(case_dir, use_corrected)
    try:
        report = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LionError(
            f"{path}: unreadable report ({e}); predict the case again (lion predict --overwrite)"
        ) from None
    if not isinstance(report, dict):
        raise LionError(f"{path}: expected a JSON object, found {type(report).__name__}; "
                        "predict the case again (lion predict --overwrite)")  # fmt: skip
    lesions = [_lesion(r) for r in report.get("lesions") or [] if isinstance(r, dict)]
    lesions.sort(key=lambda les: -(les["volume_ml"] or 0.0))
    reasons = report.get("flag_reasons") or []
    if isinstance(reasons, str):  # as summary.csv writes them
        reasons = [r for r in reasons.split("; ") if r]
    pictures = [Path(case_dir) / v for v in VIEWS if (Path(case_dir) / v).is_file()]
    fixed = [Path(case_dir) / v.replace(".png", "_corrected.png") for v in VIEWS]
    if corrected and all(f.is_file() for f in fixed):  # the MIPs a correction drew
        pictures = fixed
    if not pictures and (Path(case_dir) / FALLBACK_VIEW).is_file():
        pictures = [Path(case_dir) / FALLBACK_VIEW]
    if not pictures:
        log.warning("%s: no MIP picture (%s or %s)", case_dir, ", ".join(VIEWS), FALLBACK_VIEW)
    count = report.get("lesion_count")
    return {
        "case_id": str(report.get("case_id") or Path(case_dir).name),
        "folder": Path(case_dir).name,
        "corrected": corrected,
        "tmtv_ml": _number(report.get("tmtv_ml")),
        "lesion_count": int(count) if isinstance(count, int) else len(lesions),
        "suv_max": _number(report.get("suv_max")),
        "flag_score": _number(report.get("flag_score")),
        "flag_reasons": [str(r) for r in reasons],
        "hot_spots_ml": _number((report.get("flag_terms") or {}).get("unsegmented_hot_spots")),
        "lesions": lesions[:MAX_LESIONS],
        "pictures": pictures,
        "model": _model_name(report),
        "lion_version": str(report["lion_version"]) if report.get("lion_version") else None,
    }


def _model_name(report: dict) -> str | None:
    """The installed model's name, else the model (folder or name) report.json names."""
    name = report.get("installed_model") or report.get("model")
    return str(name) if name else None


def read_cases(pred_dir: str | Path, use_corrected: bool = False) -> list[dict]:
    """Every finished case of ``pred_dir`` (:func:`read_case`), in folder order."""
    cases = [read_case(folder, use_corrected) for folder in case_folders(pred_dir)]
    folders: dict[str, list[str]] = {}
    for case in cases:
        folders.setdefault(case["case_id"], []).append(case["folder"])
    repeated = {i: f for i, f in folders.items() if len(f) > 1}
    if repeated:
        listed = "; ".join(f"{i} in {' and '.join(f)}" for i, f in sorted(repeated.items()))
        raise LionError(
            f"{pred_dir}: report.json case ids repeat ({listed}); each case folder must hold "
            "its own case (predict them again into one clean folder)"
        )
    return cases


def add_dice(cases: list[dict], pred_dir: str | Path, gt_dir: str | Path, out_dir: Path,
             progress: bool = False, use_corrected: bool = False) -> None:  # fmt: skip
    """Set each case's ``dice`` (None without ground truth or with an empty one) and
    ``dice_rank`` (the value it is ranked by, see the module docstring).

    Runs :func:`lion_nnunet.analysis.evaluate.evaluate` on ``gt_dir`` (label maps
    ``<case_id>.nii.gz``, as labelsTs) and keeps its tables in ``out_dir``; ground-truth cases
    without a prediction are listed there and get no card.
    """
    import pandas as pd

    from lion_nnunet.analysis.evaluate import evaluate

    evaluate(pred_dir, gt_dir, out_dir, allow_missing=True, overwrite=True, progress=progress,
             use_corrected=use_corrected)  # fmt: skip
    table = pd.read_csv(out_dir / "per_case.csv", dtype={"case_id": str})
    rows = {r["case_id"]: r for r in table.to_dict(orient="records")}
    matched = 0
    for case in cases:
        row = rows.get(case["case_id"])
        if row is None or row.get("status") == "missing":
            case["dice"], case["dice_rank"] = None, None
            continue
        matched += 1
        case["dice"] = _number(row.get("dice"), 4)
        if case["dice"] is not None:
            case["dice_rank"] = case["dice"]
        else:  # empty ground truth: perfect when nothing was predicted
            case["dice_rank"] = 1.0 if (_number(row.get("pred_volume_ml")) or 0.0) == 0 else 0.0
    if not matched:
        raise LionError(
            f"{gt_dir}: no ground truth for any of the {len(cases)} predicted case(s) "
            f"(expected <case_id>.nii.gz, e.g. {cases[0]['case_id']}.nii.gz); give the labelsTs "
            "folder of these cases or leave out --gt"
        )


def review_order(cases: list[dict], by_dice: bool = False) -> list[dict]:
    """Cases sorted for review (module docstring); each gets ``rank`` (1 = look first)."""

    def flag_key(case: dict) -> tuple:
        score, hot = case["flag_score"], case.get("hot_spots_ml") or 0.0
        return (score is None, -(score or 0.0), -hot, -(case["tmtv_ml"] or 0.0), case["case_id"])

    ordered = sorted(cases, key=flag_key)
    if by_dice:
        ordered.sort(key=lambda c: (c.get("dice_rank") is None, c.get("dice_rank") or 0.0))
    for rank, case in enumerate(ordered, start=1):
        case["rank"] = rank
    return ordered
