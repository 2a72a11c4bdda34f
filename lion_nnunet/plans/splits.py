"""`lion splits`: nested stratified training subsets with one fixed val set, or k folds; by patient.

Fold k of ``splits_final.json`` trains on subset k (subset k contains subset k-1) and validates on
the same validation set for every k, so models trained on growing data are compared on equal
terms (the preprint's data-centric experiments). ``lion_splits.csv`` (long format: fold,
subset_size, role, case_id, patient_id, <stratify column>) records which case is where;
``lion tom --splits`` reads it. ``--folds K`` instead writes K cross-validation folds.

Every split moves whole patients (``patient_id`` of lion_cases.csv; several studies of one
patient never sit on both sides, see :mod:`lion_nnunet.splitting`). Stratification: patients are
put in an order whose every prefix keeps the group proportions as closely as integers allow; the
validation set is the first patients of that order until ``--val-size`` cases are reached, and
subset k the first patients of the rest until ``size_k`` cases (a multi-study patient may take a
subset a few cases past its size).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from lion_nnunet import wording
from lion_nnunet.errors import LionError
from lion_nnunet.io import write_csv, write_json
from lion_nnunet.nnunet_env import find_dataset_name, require_folder
from lion_nnunet.splitting import (
    group_by_patient,
    grouped_kfold,
    patients_on_both_sides,
    stratified_patient_order,
    take_patients,
)

log = logging.getLogger(__name__)


def _training_cases(name: str, stratify: str) -> tuple[pd.Series, dict[str, str]]:
    """Training cases of lion_cases.csv: (case -> stratum, "unknown" if empty; case -> patient)."""
    cases_csv = require_folder("nnUNet_raw") / name / "lion_cases.csv"
    if not cases_csv.is_file():
        raise LionError(f"{cases_csv} not found; convert the dataset with lion convert first")
    cases = pd.read_csv(cases_csv, dtype=str).fillna("")
    if stratify not in cases.columns:
        raise LionError(
            f"{cases_csv} has no column {stratify!r} to stratify by "
            f"(columns: {wording.names(cases.columns)})"
        )
    cases = cases[cases["split"] == "train"].set_index("case_id")
    if "patient_id" not in cases.columns:  # converted before patient ids were recorded
        cases["patient_id"] = cases.index
    cases["patient_id"] = cases["patient_id"].where(cases["patient_id"] != "", cases.index)
    return cases[stratify].replace("", "unknown"), cases["patient_id"].to_dict()


def _split_rows(
    splits: list[dict], sizes: list[int], patient_of: dict, groups: pd.Series, stratify: str
) -> list[dict]:
    """lion_splits.csv rows: one per fold, role and case."""
    return [
        {"fold": k, "subset_size": s, "role": role, "case_id": cid,
         "patient_id": patient_of[cid], stratify: groups[cid]}
        for k, (s, split) in enumerate(zip(sizes, splits, strict=True))
        for role in ("train", "val")
        for cid in split[role]
    ]  # fmt: skip


def _write_splits(name: str, splits: list[dict], rows: list[dict], overwrite: bool) -> tuple:
    out = require_folder("nnUNet_preprocessed") / name
    out.mkdir(parents=True, exist_ok=True)
    target = out / "splits_final.json"
    existing = json.loads(target.read_text()) if target.is_file() else None
    if existing is not None and existing != splits:
        if not overwrite:
            raise LionError(
                f"{target} exists with other splits (lion convert's 5 folds, copied by nnU-Net's "
                "planner or lion plans install, or nnUNetv2_train's own); use --overwrite to "
                "replace it (kept as splits_final.previous.json)"
            )
        write_json(existing, out / "splits_final.previous.json")
    write_json(splits, target)
    table = out / "lion_splits.csv"
    write_csv(pd.DataFrame(rows), table)
    return target, table


def make_splits(
    dataset: int | str,
    subset_sizes: list[int],
    stratify: str = "disease",
    seed: int = 0,
    val_fraction: float = 0.2,
    val_size: int | None = None,
    pool: str = "mixed",
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write splits_final.json and lion_splits.csv for a dataset; return their paths."""
    name = find_dataset_name(dataset)
    groups, patient_of = _training_cases(name, stratify)
    sizes = [int(s) for s in subset_sizes]
    if not sizes or sizes != sorted(set(sizes)) or sizes[0] < 1:
        raise LionError(f"--subset-sizes must be increasing positive numbers, got {subset_sizes}")
    rng = np.random.default_rng(seed)
    n_val = val_size if val_size is not None else round(val_fraction * len(groups))
    if not 1 <= n_val < len(groups):
        raise LionError(f"validation size {n_val} must be between 1 and {len(groups) - 1} cases")
    by_patient, _ = group_by_patient(patient_of)
    order = stratified_patient_order(patient_of, groups.to_dict(), rng)
    val = take_patients(order, by_patient, n_val)
    rest = groups.drop(index=val)
    if pool != "mixed":
        if pool not in set(rest):
            raise LionError(
                f"--pool {pool!r} is not a value of {stratify!r}: "
                f"{wording.names(sorted(set(rest)))}"
            )
        rest = rest[rest == pool]
    if sizes[-1] > len(rest):
        raise LionError(
            f"subset size {sizes[-1]} exceeds the training pool: {len(rest)} cases ({pool}, "
            f"after {len(val)} validation cases); use smaller --subset-sizes"
        )
    pool_patients = {c: patient_of[c] for c in rest.index}
    pool_cases, _ = group_by_patient(pool_patients)
    order = stratified_patient_order(pool_patients, rest.to_dict(), rng)
    splits = [
        {"train": sorted(take_patients(order, pool_cases, s)), "val": sorted(val)} for s in sizes
    ]
    rows = _split_rows(splits, sizes, patient_of, groups, stratify)
    return _write_splits(name, splits, rows, overwrite)


def make_folds(
    dataset: int | str,
    folds: int = 5,
    stratify: str = "disease",
    seed: int = 0,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write ``folds`` patient-grouped, stratified cross-validation folds (splits_final.json)."""
    name = find_dataset_name(dataset)
    groups, patient_of = _training_cases(name, stratify)
    splits = grouped_kfold(patient_of, groups.to_dict(), folds, seed)
    sizes = [len(split["train"]) for split in splits]
    rows = _split_rows(splits, sizes, patient_of, groups, stratify)
    return _write_splits(name, splits, rows, overwrite)


def install_default_splits(name: str) -> Path | None:
    """Copy lion convert's ``splits_final.json`` to nnUNet_preprocessed, as nnU-Net's planner does.

    An existing file is kept (nnU-Net's planner keeps it too); when it puts one patient's studies
    on both sides of a fold, a warning names them and the fix.
    """
    raw = require_folder("nnUNet_raw") / name / "splits_final.json"
    target = require_folder("nnUNet_preprocessed") / name / "splits_final.json"
    if not target.is_file():
        if not raw.is_file():
            return None
        write_json(json.loads(raw.read_text()), target)
        return target
    cases_csv = require_folder("nnUNet_raw") / name / "lion_cases.csv"
    if cases_csv.is_file():
        table = pd.read_csv(cases_csv, dtype=str).fillna("")
        if "patient_id" in table.columns:
            patient_of = dict(zip(table.case_id, table.patient_id, strict=True))
            leaks = patients_on_both_sides(json.loads(target.read_text()), patient_of)
            if leaks:
                log.warning(
                    "%s puts %d patient(s) in training and validation of one fold (e.g. %s); "
                    "replace it with lion splits -d %s --folds 5 --overwrite",
                    target, len(leaks), ", ".join(leaks[:3]), name,
                )  # fmt: skip
    return target
