"""``lion evaluate --interactive STEPS_DIR``: the autoPET IV interactive protocol.

A case is predicted once without clicks and again after each click pair: ``N + 1`` predictions
named as the official evaluation script names them, ``STEPS_DIR/<case>_pred<i>.nii.gz``
(i = 0..N), or the same files in ``STEPS_DIR/<case>/``. Each step is scored with the autoPET
metrics of :func:`lion_nnunet.analysis.metrics.case_metrics` (Dice; false-positive and
false-negative volume in ml, components 18-connected), and each curve is summarised as the
official ``evaluation_metrics.py`` (lab-midas/autoPETCTIV) does: the area under it by the
trapezoid rule over x = 0, 1, ..., N (so an AUC spans N units; Dice AUC at most N) and the
final value. A NaN anywhere (Dice and FN volume of a case without tumor) makes the AUC NaN;
means over cases skip NaN, as pandas' ``mean`` in the official script does.

Outputs: ``per_step.csv`` (case_id, step, dice, fp_volume_ml, fn_volume_ml), ``per_case.csv``
(case_id, steps and the official columns dice_auc, fpv_auc, fnv_auc, dice_final, fpv_final,
fnv_final), both rounded as ``lion evaluate`` rounds; ``interactive.json`` with the same numbers
unrounded, per-step means and the means of the official columns.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from lion_nnunet.analysis.evaluate import ground_truth_files, listing, resolve_tumor_label
from lion_nnunet.analysis.metrics import case_metrics
from lion_nnunet.case_ids import case_id_of_name
from lion_nnunet.errors import LionError
from lion_nnunet.io import geometry_mismatch, read_image, write_csv, write_json
from lion_nnunet.progress import track

log = logging.getLogger(__name__)

STEP_METRICS = ("dice", "fp_volume_ml", "fn_volume_ml")
#: The official script's columns: (curve metric, AUC column, final column).
SUMMARIES = (
    ("dice", "dice_auc", "dice_final"),
    ("fp_volume_ml", "fpv_auc", "fpv_final"),
    ("fn_volume_ml", "fnv_auc", "fnv_final"),
)
CASE_COLUMNS = ("dice_auc", "fpv_auc", "fnv_auc", "dice_final", "fpv_final", "fnv_final")
DECIMALS = {"dice": 4, "fp_volume_ml": 3, "fn_volume_ml": 3, "dice_auc": 4, "dice_final": 4,
            "fpv_auc": 3, "fnv_auc": 3, "fpv_final": 3, "fnv_final": 3}  # fmt: skip


def auc(values: list[float]) -> float:
    """Area under a per-step curve, trapezoid rule at x = 0, 1, ..., len - 1; NaN if any is.

    Examples:
        >>> auc([0.5, 0.7, 0.9])  # (0.5 + 0.7) / 2 + (0.7 + 0.9) / 2
        1.4
    """
    y = np.asarray(values, dtype=np.float64)
    return float(np.sum((y[1:] + y[:-1]) / 2.0))


def step_files(steps_dir: Path, case: str) -> list[Path]:
    """The step predictions of a case, step 0 first; [] when it has none.

    Raises:
        LionError: steps with a gap (e.g. pred0, pred1, pred3).
    """
    for name in dict.fromkeys([case_id_of_name(case), case]):  # the case id, the file's name
        for folder in (steps_dir, steps_dir / name):
            pattern = re.compile(rf"{re.escape(name)}_pred(\d+)\.nii\.gz")
            found = {}
            if folder.is_dir():
                for path in folder.glob(f"{name}_pred*.nii.gz"):
                    match = pattern.fullmatch(path.name)
                    if match:
                        found[int(match.group(1))] = path
            if found:
                gaps = sorted(set(range(max(found) + 1)) - set(found))
                if gaps:
                    raise LionError(
                        f"{folder}: case {name} has predictions up to step {max(found)} but "
                        f"none for step(s) {', '.join(map(str, gaps))} ({name}_pred<i>.nii.gz)"
                    )
                return [found[i] for i in range(len(found))]
    return []


def missing_steps(steps_dir: Path, gts: list[Path]) -> list[str]:
    """Case ids of the ground-truth files without step predictions in ``steps_dir``."""
    names = [gt.name[: -len(".nii.gz")] for gt in gts]
    return [case_id_of_name(name) for name in names if not step_files(steps_dir, name)]


def _step_row(gt_img: sitk.Image, gt: np.ndarray, path: Path, label: int, strict: bool) -> dict:
    pred_img = read_image(path, "prediction")
    diff = geometry_mismatch(gt_img, pred_img)
    if diff:
        if strict:
            raise LionError(f"{path}: {diff} (ground truth grid); --strict refuses it")
        pred_img = sitk.Resample(pred_img, gt_img, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
        log.warning("%s: %s; resampled onto the ground truth grid", path, diff)
    pred = sitk.GetArrayViewFromImage(pred_img) == label
    metrics = case_metrics(pred, gt, gt_img.GetSpacing()[::-1])
    return {m: metrics[m] for m in STEP_METRICS}


def case_summary(rows: list[dict]) -> dict:
    """The official per-case columns of one case's step rows (step 0 first)."""
    out = {}
    for metric, auc_column, final_column in SUMMARIES:
        curve = [r[metric] for r in rows]
        out[auc_column] = auc(curve)
        out[final_column] = float(curve[-1])
    return {c: out[c] for c in CASE_COLUMNS}


def _rounded(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for column, decimals in DECIMALS.items():
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).round(decimals)
    return frame


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.mean()) if len(values) else None


def evaluate_steps(
    steps_dir: str | Path,
    gt_dir: str | Path,
    out_dir: str | Path,
    tumor_label: int | None = None,
    gt_tumor_label: int | None = None,
    strict: bool = False,
    allow_missing: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Score every ground-truth case's step predictions; write the outputs (module docstring).

    Args:
        steps_dir: ``<case>_pred<i>.nii.gz`` (i = 0..N), flat or in ``<case>/`` folders.
        gt_dir: Ground-truth label maps ``<case>.nii.gz``.
        out_dir: Output folder.
        tumor_label: Tumor value in the predictions (default: ``steps_dir/dataset.json``, else 1).
        gt_tumor_label: Tumor value in the ground truth (default: its dataset.json, else 1).
        strict: Refuse predictions on another grid instead of resampling them.
        allow_missing: Score the cases that have steps when others have none.
        overwrite: Replace existing outputs.
        progress: Show a progress bar.

    Returns:
        The content of interactive.json.
    """
    steps_dir, gt_dir, out = Path(steps_dir), Path(gt_dir), Path(out_dir)
    gts = ground_truth_files(gt_dir)
    if not steps_dir.is_dir():
        raise LionError(f"{steps_dir}: step prediction folder not found")
    if (out / "per_case.csv").exists() and not overwrite:
        raise LionError(f"{out}/per_case.csv exists; use --overwrite to replace it")
    label = resolve_tumor_label(steps_dir, tumor_label)
    gt_label = resolve_tumor_label(gt_dir, gt_tumor_label, with_parent=True)
    files = {gt: step_files(steps_dir, gt.name[: -len(".nii.gz")]) for gt in gts}
    missing = missing_steps(steps_dir, gts)
    if missing and not allow_missing:
        raise LionError(f"{steps_dir}: no step predictions (<case>_pred0.nii.gz, ...) for "
                        f"{len(missing)} of {len(gts)} case(s): {listing(missing)}; pass "
                        "--allow-missing to score the others")  # fmt: skip
    counts = {len(f) for f in files.values() if f}
    if not counts:
        raise LionError(f"{steps_dir}: no step predictions (<case>_pred0.nii.gz, ...) for any "
                        f"case of {gt_dir}")  # fmt: skip
    if len(counts) > 1:
        per_count = {n: [case_id_of_name(g.name[:-7]) for g, f in files.items() if len(f) == n]
                     for n in sorted(counts)}  # fmt: skip
        described = "; ".join(f"{n} steps: {listing(ids)}" for n, ids in per_count.items())
        raise LionError(
            f"{steps_dir}: cases have different numbers of steps ({described}); "
            "areas under the curve are comparable only over the same steps"
        )
    step_rows, case_rows = [], []
    for gt_path in track([g for g, f in files.items() if f], "interactive", None, progress):
        case_id = case_id_of_name(gt_path.name[: -len(".nii.gz")])
        gt_img = read_image(gt_path, "ground truth")
        gt = sitk.GetArrayViewFromImage(gt_img) == gt_label
        rows = [
            {"case_id": case_id, "step": i, **_step_row(gt_img, gt, path, label, strict)}
            for i, path in enumerate(files[gt_path])
        ]
        step_rows.extend(rows)
        case_rows.append({"case_id": case_id, "steps": len(rows), **case_summary(rows)})
    if missing:
        log.warning("%d case(s) have no step predictions: %s", len(missing), listing(missing))
    per_step, per_case = pd.DataFrame(step_rows), pd.DataFrame(case_rows)
    curve = [
        {"step": int(step), **{f"{m}_mean": _mean(frame[m]) for m in STEP_METRICS}}
        for step, frame in per_step.groupby("step")
    ]
    result = {
        "steps_dir": str(steps_dir), "gt": str(gt_dir), "cases": len(case_rows),
        "steps": counts.pop(), "missing": missing,
        "mean": {c: _mean(per_case[c]) for c in CASE_COLUMNS}, "curve": curve,
        "per_case": per_case.replace({np.nan: None}).to_dict(orient="records"),
        "per_step": per_step.replace({np.nan: None}).to_dict(orient="records"),
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    write_csv(_rounded(per_step), out / "per_step.csv")
    write_csv(_rounded(per_case), out / "per_case.csv")
    write_json(result, out / "interactive.json")
    return result
