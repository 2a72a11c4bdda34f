"""`lion splits`: progressively larger, nested, stratified training subsets with one fixed val set.

Fold k of ``splits_final.json`` trains on subset k (subset k contains subset k-1) and validates on
the same validation set for every k, so models trained on growing data are compared on equal
terms (the preprint's data-centric experiments). ``lion_splits.csv`` (long format: fold,
subset_size, role, case_id, <stratify column>) records which case is where; ``lion tom --splits``
reads it.

Stratification: the validation set is drawn per group in proportion to the group sizes; the pool
is put in an order whose every prefix keeps the group proportions as closely as integers allow,
and subset k is the first ``size_k`` cases of that order.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from lion_nnunet.errors import LionError
from lion_nnunet.io import write_csv, write_json
from lion_nnunet.nnunet_env import find_dataset_name, require_folder


def stratified_order(groups: pd.Series, rng: np.random.Generator) -> list[str]:
    """Case ids ordered so that every prefix keeps the group proportions (index = case ids)."""
    keys = []
    for _, members in groups.groupby(groups):
        ids = list(members.index)
        rng.shuffle(ids)
        n = len(ids)
        keys += [((i + rng.uniform(0.0, 1.0)) / n, cid) for i, cid in enumerate(ids)]
    return [cid for _, cid in sorted(keys)]


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
    raw = require_folder("nnUNet_raw") / name
    cases_csv = raw / "lion_cases.csv"
    if not cases_csv.is_file():
        raise LionError(f"{cases_csv} not found; convert the dataset with lion convert first")
    cases = pd.read_csv(cases_csv, dtype=str).fillna("")
    if stratify not in cases.columns:
        raise LionError(
            f"{cases_csv} has no column {stratify!r} to stratify by "
            f"(columns: {list(cases.columns)})"
        )
    cases = cases[cases["split"] == "train"].set_index("case_id")
    groups = cases[stratify].replace("", "unknown")
    sizes = [int(s) for s in subset_sizes]
    if not sizes or sizes != sorted(set(sizes)) or sizes[0] < 1:
        raise LionError(f"--subset-sizes must be increasing positive numbers, got {subset_sizes}")
    rng = np.random.default_rng(seed)
    n_val = val_size if val_size is not None else round(val_fraction * len(cases))
    if not 1 <= n_val < len(cases):
        raise LionError(f"validation size {n_val} must be between 1 and {len(cases) - 1} cases")
    val = stratified_order(groups, rng)[:n_val]
    rest = groups.drop(index=val)
    if pool != "mixed":
        if pool not in set(rest):
            raise LionError(f"--pool {pool!r} is not a value of {stratify!r}: {sorted(set(rest))}")
        rest = rest[rest == pool]
    if sizes[-1] > len(rest):
        raise LionError(
            f"subset size {sizes[-1]} exceeds the training pool: {len(rest)} cases ({pool}, "
            f"after {n_val} validation cases); use smaller --subset-sizes"
        )
    order = stratified_order(rest, rng)
    splits = [{"train": sorted(order[:s]), "val": sorted(val)} for s in sizes]
    rows = [
        {"fold": k, "subset_size": s, "role": role, "case_id": cid, stratify: groups[cid]}
        for k, (s, split) in enumerate(zip(sizes, splits, strict=True))
        for role in ("train", "val")
        for cid in split[role]
    ]
    out = require_folder("nnUNet_preprocessed") / name
    out.mkdir(parents=True, exist_ok=True)
    target = out / "splits_final.json"
    existing = json.loads(target.read_text()) if target.is_file() else None
    if existing is not None and existing != splits:
        if not overwrite:
            raise LionError(
                f"{target} exists with other splits (nnUNetv2_train writes its default 5-fold "
                "splits on first use); use --overwrite to replace it (kept as "
                "splits_final.previous.json)"
            )
        write_json(existing, out / "splits_final.previous.json")
    write_json(splits, target)
    table = out / "lion_splits.csv"
    write_csv(pd.DataFrame(rows), table)
    return target, table
