"""Does training-set diversity predict accuracy? Spearman correlation of a TOM measure with Dice.

A *set* (a row of ``lion tom``'s ``diversity.csv``) is the training set of one model; the model's
accuracy comes from its evaluation summary (``lion evaluate``'s ``eval/summary.csv``). The join:

* ``--eval TABLE`` alone: one table with a ``set`` column naming the diversity set (its ``set`` or
  ``file`` value) and the metric column, one row per model;
* ``--pairs PAIRS``: a CSV with columns ``set, eval`` mapping each set to its model's summary CSV
  (relative paths are relative to the pairs file).

The metric column is ``<metric>``, ``<metric>_median`` or ``median_<metric>``, in that order.
``--eval-filter column=value`` keeps only matching rows (e.g. the overall row of a summary with
one row per disease); after filtering, each set must have exactly one row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from lion_nnunet.errors import LionError
from lion_nnunet.io import atomic_path, write_csv, write_json


def _read(path: Path, what: str) -> pd.DataFrame:
    if not path.is_file():
        raise LionError(f"{path}: {what} not found")
    return pd.read_csv(path)


def parse_filters(filters: Sequence[str]) -> list[tuple[str, str]]:
    """``["group=all", ...]`` -> ``[("group", "all"), ...]``."""
    out = []
    for f in filters:
        if "=" not in f:
            raise LionError(f"--eval-filter {f!r}: expected column=value, e.g. group=all")
        col, value = f.split("=", 1)
        out.append((col.strip(), value.strip()))
    return out


def _filtered(frame: pd.DataFrame, filters: list[tuple[str, str]], where: Path) -> pd.DataFrame:
    for col, value in filters:
        if col not in frame.columns:
            raise LionError(
                f"{where}: no column {col!r} for --eval-filter "
                f"(columns: {', '.join(frame.columns)})"
            )
        frame = frame[frame[col].astype(str) == value]
    return frame


def metric_column(frame: pd.DataFrame, metric: str, where: Path) -> str:
    """The column holding ``metric`` in an evaluation table."""
    for name in (metric, f"{metric}_median", f"median_{metric}"):
        if name in frame.columns:
            return name
    raise LionError(
        f"{where}: no column {metric!r}, '{metric}_median' or 'median_{metric}' "
        f"(columns: {', '.join(frame.columns)}); pick another --metric"
    )


def collect_metric(
    eval_table: Path | None,
    pairs: Path | None,
    metric: str,
    filters: Sequence[str] = (),
) -> pd.DataFrame:
    """Table ``set, <metric>``: one accuracy value per set, joined as the module docstring says."""
    flt = parse_filters(filters)
    if (eval_table is None) == (pairs is None):
        raise LionError("give either --eval TABLE (with a 'set' column) or --pairs PAIRS")
    if eval_table is not None:
        frame = _filtered(_read(eval_table, "evaluation table"), flt, eval_table)
        if "set" not in frame.columns:
            raise LionError(
                f"{eval_table}: no 'set' column naming the training set of each model; add one "
                "or map sets to per-model summaries with --pairs PAIRS (columns set, eval)"
            )
        col = metric_column(frame, metric, eval_table)
        dup = frame["set"][frame["set"].duplicated()].astype(str).unique()
        if len(dup):
            raise LionError(
                f"{eval_table}: several rows for set(s) {', '.join(dup[:5])}; select one with "
                "--eval-filter column=value"
            )
        return pd.DataFrame({"set": frame["set"].astype(str), metric: frame[col].astype(float)})
    mapping = _read(pairs, "pairs table")
    if not {"set", "eval"} <= set(mapping.columns):
        raise LionError(f"{pairs}: expected columns set, eval (got {', '.join(mapping.columns)})")
    rows = []
    for set_name, path in zip(mapping["set"].astype(str), mapping["eval"].astype(str), strict=True):
        file = Path(path) if Path(path).is_absolute() else pairs.parent / path
        frame = _filtered(_read(file, f"evaluation summary of set {set_name!r}"), flt, file)
        if len(frame) != 1:
            raise LionError(
                f"{file}: {len(frame)} rows after filtering, expected 1; select the row to use "
                "with --eval-filter column=value (e.g. group=all)"
            )
        value = float(frame[metric_column(frame, metric, file)].iloc[0])
        rows.append({"set": set_name, metric: value})
    return pd.DataFrame(rows)


def correlate(
    diversity_csv: Path,
    accuracy: pd.DataFrame,
    measure: str,
    metric: str,
    out_png: Path,
) -> dict:
    """Spearman rho and p between ``measure`` and ``metric`` over the sets in both tables.

    Writes the scatter plot to ``out_png`` and, beside it, ``<stem>.json`` (rho, p, n, ...) and
    ``<stem>.csv`` (the joined points).
    """
    div = _read(diversity_csv, "diversity table")
    if measure not in div.columns:
        raise LionError(
            f"{diversity_csv}: no measure {measure!r} (columns: {', '.join(div.columns)})"
        )
    keys = ["set"] + (["file"] if "file" in div.columns else [])
    joined = None
    for key in keys:
        j = div[[key, measure, "n_cases"]].rename(columns={key: "set"}).astype({"set": str})
        j = j.merge(accuracy, on="set")
        if joined is None or len(j) > len(joined):
            joined = j
    unmatched = sorted(set(accuracy["set"]) - set(joined["set"]))
    if unmatched:
        raise LionError(
            f"set(s) {', '.join(unmatched[:5])} of the evaluation are not in {diversity_csv} "
            f"(sets there: {', '.join(div['set'].astype(str)[:8])})"
        )
    joined = joined.dropna(subset=[measure, metric])
    if len(joined) < 3:
        raise LionError(
            f"only {len(joined)} set(s) have both {measure!r} and {metric!r}; "
            "a Spearman correlation needs at least 3"
        )
    if joined[measure].nunique() < 2 or joined[metric].nunique() < 2:
        raise LionError(f"{measure!r} or {metric!r} is constant over the sets; rho is undefined")
    rho, p = spearmanr(joined[measure], joined[metric])
    result = {
        "measure": measure, "metric": metric, "rho": float(rho), "p": float(p),
        "n": len(joined), "diversity": str(diversity_csv),
    }  # fmt: skip
    _plot(joined, measure, metric, result, out_png)
    write_csv(joined, out_png.with_suffix(".csv"))
    write_json(result | {"points": joined.to_dict(orient="records")}, out_png.with_suffix(".json"))
    return result


def _plot(frame: pd.DataFrame, measure: str, metric: str, result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    sizes = 20 + 80 * frame["n_cases"] / max(1, frame["n_cases"].max())
    ax.scatter(frame[measure], frame[metric], s=sizes, alpha=0.8)
    for x, y, name in zip(frame[measure], frame[metric], frame["set"], strict=True):
        ax.annotate(str(name), (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if frame[measure].nunique() > 1:
        slope, icpt = np.polyfit(frame[measure], frame[metric], 1)
        xs = np.linspace(frame[measure].min(), frame[measure].max(), 10)
        ax.plot(xs, slope * xs + icpt, "--", color="grey", linewidth=1)
    p_text = "P < 0.001" if result["p"] < 0.001 else f"P = {result['p']:.3f}"
    ax.set_title(f"Spearman rho = {result['rho']:.2f}, {p_text}, n = {result['n']}")
    ax.set_xlabel(f"{measure} (training-set TOM)")
    ax.set_ylabel(f"{metric} (model)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)
