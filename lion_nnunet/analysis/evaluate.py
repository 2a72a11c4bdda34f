"""`lion evaluate`: autoPET metrics per case and per cohort/group, from prediction folders.

Predictions: ``PRED/<case>.nii.gz`` (any tool; multi-class maps keep only the tumor label) or
``lion predict`` output ``PRED/<case>/tumor.nii.gz`` (0/1). Case ids are the ground-truth file names
sanitised as everywhere in LION (:mod:`lion_nnunet.case_ids`); a prediction under the raw name
is found too. Ground truth: label maps ``GT/<case>.nii.gz`` (organ classes ignored) or binary
masks. The tumor label of each side comes from its dataset.json when there is one
(``PRED/dataset.json``, which nnUNetv2_predict copies there; ``GT/dataset.json`` or
``GT/../dataset.json`` for a raw dataset's labelsTs), by the rule of
:func:`lion_nnunet.labels.find_tumor_label`; else it is 1 (LION's layout, binary masks);
``--tumor-label``/``--gt-tumor-label`` override. A prediction on another
grid is resampled onto the ground truth (nearest neighbour) with a warning, or refused with
``strict``. A ground-truth case without a prediction is an error that lists them all (as
nnU-Net's evaluation refuses a prediction folder that lacks a case); with ``allow_missing`` the
predicted cases are evaluated and the others listed and counted (status "missing"), never dropped.

Outputs (stable interface, docs/metrics.md): ``per_case.csv``, ``summary.csv``, ``summary.json``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk

from lion_nnunet.analysis.metrics import case_metrics, detection_scores
from lion_nnunet.case_ids import case_id_of_name
from lion_nnunet.cohort.cluster import ClusterOptions
from lion_nnunet.cohort.run import map_cases
from lion_nnunet.errors import LionError
from lion_nnunet.inference.plausibility import read_pet
from lion_nnunet.io import (
    geometry_mismatch,
    read_image,
    voxel_volume_ml,
    write_csv,
    write_json,
)
from lion_nnunet.labels import TUMOR_LABEL, find_tumor_label

log = logging.getLogger(__name__)
METRICS = (
    "dice",
    "fp_volume_ml",
    "fn_volume_ml",
    "gt_volume_ml",
    "pred_volume_ml",
    "tmtv_error_ml",
)
PET_METRICS = ("gt_suv_max", "gt_tlg", "pred_tlg", "tlg_error")
COUNTS = ("lesions_gt", "lesions_pred", "lesions_tp", "lesions_fp", "lesions_fn")
#: Decimals kept in per_case.csv: Dice 4; volumes (ml) and TLG (SUV x ml) 3; SUVmax 2.
DECIMALS = {"dice": 4, "gt_suv_max": 2, **dict.fromkeys(("fp_volume_ml", "fn_volume_ml",
            "gt_volume_ml", "pred_volume_ml", "tmtv_error_ml", "gt_tlg", "pred_tlg",
            "tlg_error"), 3)}  # fmt: skip
#: The lesion-wise scores of summary.csv (:func:`detection_scores` of the summed counts).
SCORE_COLUMNS = ("lesion_sensitivity", "lesion_precision", "lesion_f1")


def tidy_per_case(frame: pd.DataFrame) -> pd.DataFrame:
    """per_case.csv as a reader wants it: metrics rounded (:data:`DECIMALS`), not 16 digits of
    float noise; lesion counts as integers (2, not 2.0; empty where a case has none)."""
    frame = frame.copy()
    for column, decimals in DECIMALS.items():
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).round(decimals)
    for column in COUNTS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).round().astype("Int64")
    return frame


def tidy_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """summary.csv / summary.json rounded as per_case.csv: each metric's median, quartiles and
    mean to the metric's decimals (:data:`DECIMALS`), the lesion-wise scores (shares, 0..1) to
    Dice's."""
    frame = frame.copy()
    columns = {f"{metric}_{stat}": decimals for metric, decimals in DECIMALS.items()
               for stat in ("median", "q1", "q3", "mean")}  # fmt: skip
    columns.update(dict.fromkeys(SCORE_COLUMNS, DECIMALS["dice"]))
    for column, decimals in columns.items():
        if column in frame:
            frame[column] = pd.to_numeric(frame[column]).round(decimals)
    return frame


def _names(case: str) -> list[str]:
    """A ground-truth file's name and the case id it has everywhere else (sanitised)."""
    return list(dict.fromkeys([case_id_of_name(case), case]))


#: How many missing case ids an error message lists before "and N more".
LISTED = 20


def listing(ids: list[str]) -> str:
    """Case ids for a message: all of them up to :data:`LISTED`, then "and N more"."""
    shown = ", ".join(ids[:LISTED])
    return shown + (f" and {len(ids) - LISTED} more" if len(ids) > LISTED else "")


def ground_truth_files(gt_dir: Path) -> list[Path]:
    """The ground-truth label maps ``<case>.nii.gz`` of a folder, sorted; error when none."""
    if not gt_dir.is_dir():
        raise LionError(f"{gt_dir}: ground-truth folder not found")
    gts = sorted(gt_dir.glob("*.nii.gz"))
    if not gts:
        raise LionError(f"{gt_dir}: no ground-truth .nii.gz files")
    return gts


def missing_predictions(pred_dir: Path, gts: list[Path]) -> list[str]:
    """Case ids of the ground-truth files that have no prediction in ``pred_dir``."""
    return [
        case_id_of_name(gt.name[: -len(".nii.gz")])
        for gt in gts
        if find_prediction(pred_dir, gt.name[: -len(".nii.gz")]) is None
    ]


def find_prediction(pred_dir: Path, case: str, use_corrected: bool = False) -> Path | None:
    """The prediction file of a case in either layout (by case id or raw name), or None.

    With ``use_corrected``, a ``lion predict`` case folder corrected in ``lion review --serve``
    gives its ``tumor_corrected.nii.gz`` (:func:`lion_nnunet.review.corrections.case_mask`).
    """
    for name in _names(case):
        for candidate in (pred_dir / name / "tumor.nii.gz", pred_dir / f"{name}.nii.gz"):
            if candidate.is_file():
                if use_corrected and candidate.name == "tumor.nii.gz":
                    from lion_nnunet.inference.corrected import case_mask

                    return case_mask(candidate.parent, True)[0]
                return candidate
    return None


@dataclass
class _Job:
    case: str
    gt: str
    pred: str | None
    tumor_label: int
    gt_tumor_label: int
    strict: bool
    pet: str | None = None


def resolve_tumor_label(folder: Path, given: int | None, with_parent: bool = False) -> int:
    """The tumor value of a label-map folder: ``given``, else its dataset.json's, else 1."""
    candidates = [folder / "dataset.json"] + (
        [folder.parent / "dataset.json"] if with_parent else []
    )
    for path in candidates:
        if path.is_file():
            try:
                labels = json.loads(path.read_text())["labels"]
            except (json.JSONDecodeError, KeyError) as e:
                raise LionError(
                    f"{path}: not an nnU-Net dataset.json with 'labels' ({e})"
                ) from None
            return find_tumor_label(labels, str(path), given)
    return TUMOR_LABEL if given is None else given


def find_pet(pet_dir: Path, case: str) -> Path | None:
    """The PET (SUV) file of a case: ``<case>_0000.nii.gz`` (imagesTs) or ``<case>.nii.gz``."""
    for name in _names(case):
        for candidate in (pet_dir / f"{name}_0000.nii.gz", pet_dir / f"{name}.nii.gz"):
            if candidate.is_file():
                return candidate
    return None


def _pet_metrics(pet_path: str, gt_img: sitk.Image, pred: np.ndarray, gt: np.ndarray) -> dict:
    """SUV columns: SUVmax of the true tumor, TLG (SUV x ml) of truth and prediction."""
    pet_img, suv, _ = read_pet(pet_path)  # whole file, values checked as lion predict does
    diff = geometry_mismatch(gt_img, pet_img)
    if diff:
        raise LionError(
            f"{pet_path}: PET grid differs from its ground truth ({diff}); "
            "give the PET the label maps were made on (imagesTs)"
        )
    vml = voxel_volume_ml(gt_img)
    gt_tlg = float(suv[gt].sum()) * vml
    pred_tlg = float(suv[pred].sum()) * vml
    return {"gt_suv_max": float(suv[gt].max()) if gt.any() else float("nan"),
            "gt_tlg": gt_tlg, "pred_tlg": pred_tlg, "tlg_error": pred_tlg - gt_tlg}  # fmt: skip


def _evaluate_case(job: _Job) -> dict:
    row: dict = {"case_id": job.case}
    if job.pred is None:
        return {**row, "status": "missing"}
    try:
        gt_img = read_image(job.gt, "ground truth")
        pred_img = read_image(job.pred, "prediction")
        diff = geometry_mismatch(gt_img, pred_img)
        status = "ok"
        if diff:
            if job.strict:
                raise LionError(f"{job.pred}: {diff} (ground truth {job.gt}); --strict refuses it")
            pred_img = sitk.Resample(
                pred_img, gt_img, sitk.Transform(), sitk.sitkNearestNeighbor, 0
            )
            status = "resampled"
            log.warning("%s: %s; resampled onto the ground truth grid", job.pred, diff)
        gt = sitk.GetArrayFromImage(gt_img) == job.gt_tumor_label
        pred_arr = sitk.GetArrayFromImage(pred_img)
        # lion predict's tumor.nii.gz is 0/1 whatever the model's tumor label was
        label = (TUMOR_LABEL if Path(job.pred).name in ("tumor.nii.gz", "tumor_corrected.nii.gz")
                 else job.tumor_label)  # fmt: skip
        pred = pred_arr == label
        spacing = gt_img.GetSpacing()[::-1]
        row = {**row, "status": status, **case_metrics(pred, gt, spacing)}
        if job.pet is not None:
            row.update(_pet_metrics(job.pet, gt_img, pred, gt))
        return row
    except LionError as e:
        return {**row, "status": "error", "error": str(e)}


def _row_status(row: dict) -> tuple[str, str]:
    """cohort.csv's status of a per-case row (a case without prediction is skipped)."""
    if row["status"] == "error":
        return "failed", row["error"]
    return ("skipped" if row["status"] == "missing" else "ok"), ""


def _summaries(per_case: pd.DataFrame, group_by: list[str]) -> pd.DataFrame:
    rows = []
    groupings = [("all", None)] + [(col, col) for col in group_by]
    for name, col in groupings:
        groups = [("all", per_case)] if col is None else list(per_case.groupby(col, dropna=False))
        for value, frame in groups:
            ok = frame[frame.status.isin(["ok", "resampled"])]
            empty_gt = int((ok["lesions_gt"] == 0).sum()) if "lesions_gt" in ok else 0
            row = {"grouping": name, "group": str(value), "cases": len(frame),
                   "evaluated": len(ok), "missing": int((frame.status == "missing").sum()),
                   "empty_gt": empty_gt}  # fmt: skip
            for m in METRICS + tuple(c for c in PET_METRICS if c in per_case):
                values = ok[m].dropna() if m in ok else pd.Series(dtype=float)
                row[f"{m}_median"] = float(values.median()) if len(values) else np.nan
                row[f"{m}_q1"] = float(values.quantile(0.25)) if len(values) else np.nan
                row[f"{m}_q3"] = float(values.quantile(0.75)) if len(values) else np.nan
                row[f"{m}_mean"] = float(values.mean()) if len(values) else np.nan
            sums = {c: int(ok[c].sum()) if c in ok else 0 for c in COUNTS}
            row.update(sums)
            det = detection_scores(sums["lesions_tp"], sums["lesions_fp"], sums["lesions_fn"])
            row.update({f"lesion_{k}": v for k, v in det.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def evaluate(
    pred_dir: str | Path,
    gt_dir: str | Path,
    out_dir: str | Path,
    cases_csv: str | Path | None = None,
    group_by: list[str] | None = None,
    tumor_label: int | None = None,
    gt_tumor_label: int | None = None,
    strict: bool = False,
    pet_dir: str | Path | None = None,
    allow_missing: bool = False,
    num_processes: int = 1,
    overwrite: bool = False,
    progress: bool = True,
    cluster: ClusterOptions | None = None,
    use_corrected: bool = False,
) -> dict:
    """Evaluate every ground-truth case; write per_case.csv, summary.csv, summary.json.

    Args:
        pred_dir: Predictions, ``<case>.nii.gz`` or ``<case>/tumor.nii.gz``.
        gt_dir: Ground-truth label maps ``<case>.nii.gz`` (the cases evaluated).
        out_dir: Output folder.
        cases_csv: CSV with ``case_id`` and the ``group_by`` columns (e.g. lion_cases.csv).
        group_by: Columns of ``cases_csv`` to summarise by, besides the whole cohort.
        tumor_label: Tumor value in the predictions (other values are ignored); None = from
            ``pred_dir/dataset.json``, else 1.
        gt_tumor_label: Tumor value in the ground truth; None = from ``gt_dir/dataset.json`` or
            ``gt_dir/../dataset.json``, else 1.
        strict: Refuse predictions on another grid instead of resampling them.
        pet_dir: Optional PET (SUV) folder on the ground-truth grid for SUV columns
            (``gt_suv_max`` in SUV, ``gt_tlg``/``pred_tlg``/``tlg_error`` in SUV x ml).
        allow_missing: Evaluate the predicted cases when some ground-truth case has no
            prediction (listed with status "missing") instead of refusing the folder.
        num_processes: Worker processes.
        overwrite: Replace existing outputs.
        progress: Show a progress bar.
        cluster: ``--cluster``: cases as Dask tasks, ``cohort.csv`` in ``out_dir``; None:
            ``num_processes`` local processes.
        use_corrected: take a case's ``tumor_corrected.nii.gz`` (``lion review --serve``) where
            one exists; per_case.csv then has a ``corrected`` column, summary.json
            ``corrected_cases``.

    Returns:
        The content of summary.json.
    """
    pred_dir, gt_dir, out = Path(pred_dir), Path(gt_dir), Path(out_dir)
    gts = ground_truth_files(gt_dir)
    if not pred_dir.is_dir():
        raise LionError(f"{pred_dir}: prediction folder not found")
    if (out / "per_case.csv").exists() and not overwrite:
        raise LionError(f"{out}/per_case.csv exists; use --overwrite to replace it")
    tumor_label = resolve_tumor_label(pred_dir, tumor_label)
    gt_tumor_label = resolve_tumor_label(gt_dir, gt_tumor_label, with_parent=True)
    group_by = list(group_by or [])
    cases = None
    if cases_csv is not None:
        cases = pd.read_csv(cases_csv, dtype=str).fillna("")
        missing_cols = [c for c in group_by if c not in cases.columns]
        if missing_cols:
            raise LionError(
                f"{cases_csv}: no column(s) {', '.join(missing_cols)} to group by "
                f"(columns: {', '.join(cases.columns)})"
            )
        if "case_id" not in cases.columns:
            raise LionError(
                f"{cases_csv}: no case_id column (columns: {', '.join(cases.columns)}); "
                "give a CSV like lion_cases.csv with one row per case_id"
            )
    elif group_by:
        raise LionError("--group-by needs --cases (a CSV with case_id and the grouping columns)")
    if pet_dir is not None and not Path(pet_dir).is_dir():
        raise LionError(f"{pet_dir}: PET folder not found")
    missing = missing_predictions(pred_dir, gts)
    if missing and not allow_missing:
        raise LionError(
            f"{pred_dir}: no prediction for {len(missing)} of {len(gts)} ground-truth case(s) in "
            f"{gt_dir}: {listing(missing)}; predict them, or pass --allow-missing to evaluate "
            f"the {len(gts) - len(missing)} predicted case(s) alone"
        )
    jobs = []
    for gt in gts:
        name = gt.name[: -len(".nii.gz")]
        case = case_id_of_name(name)
        pred = find_prediction(pred_dir, name, use_corrected)
        pet = None
        if pet_dir is not None:
            pet = find_pet(Path(pet_dir), name)
            if pet is None:
                raise LionError(
                    f"{pet_dir}: no PET for case {case} ({case}_0000.nii.gz or {case}.nii.gz); "
                    "give the imagesTs folder that matches --gt or leave out --pet"
                )
        jobs.append(_Job(case, str(gt), str(pred) if pred else None, tumor_label,
                         gt_tumor_label, strict, str(pet) if pet else None))  # fmt: skip
    rows = map_cases(
        _evaluate_case, jobs, [j.case for j in jobs], cluster, num_processes, "evaluate",
        progress, out, status_of=_row_status,
        on_failure=lambda case, error: {"case_id": case, "status": "error", "error": error},
    )  # fmt: skip
    per_case = pd.DataFrame(rows)
    errors = per_case[per_case.status == "error"]
    if len(errors):
        listed = "\n  - ".join(errors["error"])
        raise LionError(f"{len(errors)} case(s) could not be evaluated:\n  - {listed}")
    if cases is not None:
        keep = ["case_id", *[c for c in group_by if c != "case_id"]]
        per_case = per_case.merge(cases[keep], on="case_id", how="left")
    if missing:
        log.warning("%d case(s) have no prediction: %s", len(missing), listing(missing))
    corrected = sorted(j.case for j in jobs if j.pred and j.pred.endswith("tumor_corrected.nii.gz"))
    if use_corrected:
        per_case["corrected"] = per_case["case_id"].isin(corrected)
    summary = tidy_summary(_summaries(per_case, group_by))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(tidy_per_case(per_case), out / "per_case.csv")
    write_csv(summary, out / "summary.csv")
    result = {"pred": str(pred_dir), "gt": str(gt_dir), "missing_predictions": missing,
              "use_corrected": use_corrected, "corrected_cases": corrected,
              "summary": summary.replace({np.nan: None}).to_dict(orient="records")}  # fmt: skip
    write_json(result, out / "summary.json")
    return result
