"""`lion compare`: several tools on the cases they have in common (the preprint's comparison).

Each method's folder is evaluated with :func:`lion_nnunet.analysis.evaluate.evaluate` (any tool's
output: ``<case>.nii.gz`` binary or multi-class with a per-method tumor label, or ``lion predict``
folders). A ground-truth case that some method did not predict is an error listing them per
method, unless ``allow_missing``: then only the cases every method predicted are compared. Dice
is compared on the cases whose ground truth has tumor (it is undefined without). For each metric
and pair of methods: the median of the paired per-case difference, its 95 % bootstrap CI and
verdict (:mod:`lion_nnunet.analysis.paired_stats`: "not decided" whenever the CI contains 0), and
the Wilcoxon signed-rank p-value (scipy; NaN with fewer than two non-zero differences). Box plots
per metric are written as PNG; their titles and x labels state how many cases each box holds.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from lion_nnunet import wording
from lion_nnunet.analysis.evaluate import (
    evaluate,
    ground_truth_files,
    listing,
    missing_predictions,
)
from lion_nnunet.analysis.paired_stats import NOT_DECIDED, decide, describe, paired
from lion_nnunet.errors import LionError
from lion_nnunet.io import atomic_path, write_csv, write_json

COMPARED = ("dice", "fp_volume_ml", "fn_volume_ml")
#: With ``interactive``: the autoPET IV areas under the per-step curves (docs/interactive.md).
COMPARED_INTERACTIVE = ("dice_auc", "fpv_auc", "fnv_auc")
#: Which way is better, and the words and unit of each compared metric.
HIGHER_IS_BETTER = {"dice": True, "fp_volume_ml": False, "fn_volume_ml": False,
                    "dice_auc": True, "fpv_auc": False, "fnv_auc": False}  # fmt: skip
MEASURES = {"dice": ("Dice", ""), "fp_volume_ml": ("FP volume", " ml"),
            "fn_volume_ml": ("FN volume", " ml"), "dice_auc": ("Dice AUC", ""),
            "fpv_auc": ("FP volume AUC", " ml"), "fnv_auc": ("FN volume AUC", " ml")}  # fmt: skip


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


def box_title(metric: str, counts: dict[str, int], common: int) -> str:
    """A box plot's title: the cases in each box, out of the common cases, and why fewer."""
    sizes = list(counts.values())
    n = str(sizes[0]) if len(set(sizes)) == 1 else "/".join(map(str, sizes))
    dice = metric in ("dice", "dice_auc")
    why = " (no tumor: Dice undefined)" if dice and max(sizes) < common else ""
    return f"{metric}: {n} of {common} common cases drawn{why}"


def _boxplots(
    table: pd.DataFrame, methods: list[str], out: Path, compared: tuple[str, ...] = COMPARED
) -> dict[Path, dict[str, int]]:
    """One PNG per metric; returns each file with the number of cases in each method's box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = {}
    for metric in compared:
        data = [table[f"{m}:{metric}"].dropna().to_numpy() for m in methods]
        counts = {m: len(d) for m, d in zip(methods, data, strict=True)}
        title = box_title(metric, counts, len(table))
        fig, ax = plt.subplots(figsize=(2.4 + 1.3 * len(methods), 4))
        ax.boxplot(data, showmeans=True)
        ax.set_xticks(range(1, len(methods) + 1), [f"{m}\nn = {counts[m]}" for m in methods])
        ax.set_ylabel(metric.replace("_ml", " (ml)").replace("_", " "))
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        path = out / f"box_{metric}.png"
        with atomic_path(path) as tmp:  # the title is also the PNG's Title text chunk
            fig.savefig(tmp, dpi=100, format="png", metadata={"Title": title})
        plt.close(fig)
        drawn[path] = counts
    return drawn


def _check_missing(methods: dict[str, Path], gt_dir: Path, interactive: bool = False) -> None:
    """Refuse when some method has no prediction for a ground-truth case, naming them all."""
    from lion_nnunet.interactive.steps import missing_steps

    gts = ground_truth_files(gt_dir)
    lines = []
    for name, folder in methods.items():
        if not folder.is_dir():
            raise LionError(f"--method {name}={folder}: prediction folder not found")
        missing = missing_steps(folder, gts) if interactive else missing_predictions(folder, gts)
        if missing:
            lines.append(f"{name} lacks {len(missing)} of {len(gts)}: {listing(missing)}")
    if lines:
        raise LionError(
            f"not every ground-truth case of {gt_dir} has a prediction ({'; '.join(lines)}); "
            "predict them, or pass --allow-missing to compare on the cases every method predicted"
        )


def compare(
    methods: dict[str, Path],
    gt_dir: str | Path,
    out_dir: str | Path,
    tumor_labels: dict[str, int] | None = None,
    allow_missing: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    interactive: bool = False,
    use_corrected: bool = False,
) -> dict:
    """Evaluate every method, compare them on common cases; write CSV/JSON/PNG into ``out_dir``.

    Args:
        methods: Method name -> prediction folder (any layout :func:`evaluate` reads).
        gt_dir: Ground-truth label maps ``<case>.nii.gz``.
        out_dir: Output folder: ``<method>/`` evaluations, ``common_cases.csv``, ``paired.csv``,
            ``compare.json``, ``box_<metric>.png``.
        tumor_labels: Tumor value per method (default: its dataset.json, else 1).
        allow_missing: Compare on the cases every method predicted instead of refusing when a
            method lacks a ground-truth case.
        overwrite: Replace existing outputs.
        progress: Show progress bars.
        interactive: Each folder holds step predictions (``<case>_pred<i>.nii.gz``): compare the
            Dice, FP and FN volume AUCs of ``lion evaluate --interactive``.
        use_corrected: evaluate corrected masks (``lion review --serve``) where they exist.

    Returns:
        The content of compare.json.
    """
    from scipy.stats import wilcoxon

    from lion_nnunet.interactive.steps import evaluate_steps

    compared = COMPARED_INTERACTIVE if interactive else COMPARED

    out = Path(out_dir)
    if (out / "paired.csv").exists() and not overwrite:
        raise LionError(f"{out}/paired.csv exists; use --overwrite to replace it")
    tumor_labels = tumor_labels or {}
    unknown = set(tumor_labels) - set(methods)
    if unknown:
        raise LionError(f"--tumor-label names unknown method(s) {wording.names(sorted(unknown))}")
    if not allow_missing:
        _check_missing(methods, Path(gt_dir), interactive)
    per_method, corrected = {}, {}
    for name, folder in methods.items():
        if interactive:
            evaluate_steps(
                folder, gt_dir, out / name, tumor_label=tumor_labels.get(name),
                allow_missing=allow_missing, overwrite=True, progress=progress,
            )  # fmt: skip
        else:
            done = evaluate(folder, gt_dir, out / name, tumor_label=tumor_labels.get(name),
                            allow_missing=allow_missing, overwrite=True, progress=progress,
                            use_corrected=use_corrected)  # fmt: skip
            corrected[name] = done["corrected_cases"]
        frame = pd.read_csv(out / name / "per_case.csv")
        if "status" in frame:  # lion evaluate's; every interactive row is a scored case
            frame = frame[frame.status.isin(["ok", "resampled"])]
        per_method[name] = frame.set_index("case_id")
    common = sorted(set.intersection(*(set(f.index) for f in per_method.values())))
    if not common:
        raise LionError("the methods have no case in common; check the prediction folders")
    table = pd.DataFrame(index=common)
    for name, frame in per_method.items():
        for metric in compared:
            table[f"{name}:{metric}"] = frame.loc[common, metric]
    rows, sentences = [], []
    names = list(methods)
    for a, b in itertools.combinations(names, 2):
        for metric in compared:
            pair = table[[f"{a}:{metric}", f"{b}:{metric}"]].dropna()
            diff = pair.iloc[:, 0] - pair.iloc[:, 1]
            p = float("nan")
            if (diff != 0).sum() >= 2:
                p = float(wilcoxon(pair.iloc[:, 0], pair.iloc[:, 1]).pvalue)
            stats = paired(pair.iloc[:, 0], pair.iloc[:, 1])
            winner = decide(stats["ci95"], HIGHER_IS_BETTER[metric])
            rows.append({"method_a": a, "method_b": b, "metric": metric, "cases": len(pair),
                         "median_a": pair.iloc[:, 0].median(), "median_b": pair.iloc[:, 1].median(),
                         "median_difference": diff.median() if len(diff) else np.nan,
                         "ci95_low": stats["ci95"][0], "ci95_high": stats["ci95"][1],
                         "verdict": {"a": a, "b": b}.get(winner, NOT_DECIDED),
                         "wilcoxon_p": p})  # fmt: skip
            measure, unit = MEASURES[metric]
            sentences.append(describe(a, b, measure, stats, HIGHER_IS_BETTER[metric], unit))
    pairs = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(table.reset_index(names="case_id"), out / "common_cases.csv")
    write_csv(pairs, out / "paired.csv")
    plots = _boxplots(table, names, out, compared)
    result = {"methods": {k: str(v) for k, v in methods.items()}, "common_cases": len(common),
              "use_corrected": use_corrected, "corrected_cases": corrected,
              "only_some": {k: sorted(set(f.index) - set(common)) for k, f in per_method.items()},
              "paired": pairs.replace({np.nan: None}).to_dict(orient="records"),
              "verdicts": sentences, "plots": [str(p) for p in plots],
              "plotted_cases": {p.name: counts for p, counts in plots.items()}}  # fmt: skip
    write_json(result, out / "compare.json")
    return result
