"""`lion compare`: several tools on the cases they have in common (the preprint's comparison).

Each method's folder is evaluated with :func:`lion_nnunet.analysis.evaluate.evaluate` (any tool's
output: ``<case>.nii.gz`` binary or multi-class with a per-method tumor label, or ``lion predict``
folders). Only cases every method predicted (and whose ground truth has tumor, for Dice) are
compared. For each metric and pair of methods: median of the paired per-case difference and the
Wilcoxon signed-rank p-value (scipy; NaN with fewer than two non-zero differences). Box plots per
metric are written as PNG.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from lion_nnunet.analysis.evaluate import evaluate
from lion_nnunet.errors import LionError
from lion_nnunet.io import write_csv, write_json

COMPARED = ("dice", "fp_volume_ml", "fn_volume_ml")


def parse_methods(specs: list[str]) -> dict[str, Path]:
    """``NAME=FOLDER`` pairs -> {name: folder}."""
    methods: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            raise LionError(f"--method {spec!r}: expected NAME=FOLDER")
        if name in methods:
            raise LionError(f"--method {name!r} given twice")
        methods[name] = Path(folder)
    if len(methods) < 2:
        raise LionError("lion compare needs at least two --method NAME=FOLDER")
    return methods


def _boxplots(table: pd.DataFrame, methods: list[str], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for metric in COMPARED:
        data = [table[f"{m}:{metric}"].dropna().to_numpy() for m in methods]
        fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(methods), 4))
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(methods) + 1), methods)
        ax.set_ylabel(metric.replace("_ml", " (ml)").replace("_", " "))
        ax.set_title(f"{metric}, {len(table)} common cases")
        fig.tight_layout()
        path = out / f"box_{metric}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def compare(
    methods: dict[str, Path],
    gt_dir: str | Path,
    out_dir: str | Path,
    tumor_labels: dict[str, int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Evaluate every method, compare them on common cases; write CSV/JSON/PNG into ``out_dir``."""
    from scipy.stats import wilcoxon

    out = Path(out_dir)
    if (out / "paired.csv").exists() and not overwrite:
        raise LionError(f"{out}/paired.csv exists; use --overwrite to replace it")
    tumor_labels = tumor_labels or {}
    unknown = set(tumor_labels) - set(methods)
    if unknown:
        raise LionError(f"--tumor-label names unknown method(s) {sorted(unknown)}")
    per_method = {}
    for name, folder in methods.items():
        evaluate(folder, gt_dir, out / name, tumor_label=tumor_labels.get(name),
                 overwrite=True, progress=progress)  # fmt: skip
        frame = pd.read_csv(out / name / "per_case.csv")
        per_method[name] = frame[frame.status.isin(["ok", "resampled"])].set_index("case_id")
    common = sorted(set.intersection(*(set(f.index) for f in per_method.values())))
    if not common:
        raise LionError("the methods have no case in common; check the prediction folders")
    table = pd.DataFrame(index=common)
    for name, frame in per_method.items():
        for metric in COMPARED:
            table[f"{name}:{metric}"] = frame.loc[common, metric]
    rows = []
    names = list(methods)
    for a, b in itertools.combinations(names, 2):
        for metric in COMPARED:
            pair = table[[f"{a}:{metric}", f"{b}:{metric}"]].dropna()
            diff = pair.iloc[:, 0] - pair.iloc[:, 1]
            p = float("nan")
            if (diff != 0).sum() >= 2:
                p = float(wilcoxon(pair.iloc[:, 0], pair.iloc[:, 1]).pvalue)
            rows.append({"method_a": a, "method_b": b, "metric": metric, "cases": len(pair),
                         "median_a": pair.iloc[:, 0].median(), "median_b": pair.iloc[:, 1].median(),
                         "median_difference": diff.median() if len(diff) else np.nan,
                         "wilcoxon_p": p})  # fmt: skip
    paired = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(table.reset_index(names="case_id"), out / "common_cases.csv")
    write_csv(paired, out / "paired.csv")
    plots = _boxplots(table, names, out)
    result = {"methods": {k: str(v) for k, v in methods.items()}, "common_cases": len(common),
              "only_some": {k: sorted(set(f.index) - set(common)) for k, f in per_method.items()},
              "paired": paired.replace({np.nan: None}).to_dict(orient="records"),
              "plots": [str(p) for p in plots]}  # fmt: skip
    write_json(result, out / "compare.json")
    return result
