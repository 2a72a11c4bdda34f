"""Paired differences of two methods on the same cases, and the verdict they allow.

One rule for ``lion compare``, the demo and the ablation benchmark: the difference a - b per case,
its median, a 95 % percentile-bootstrap confidence interval of that median, and the Wilcoxon
signed-rank p-value. A method is called better only when the CI excludes 0 on its side; a CI that
contains 0 is "not decided", whichever way the median leans.

Examples:
    >>> r = paired([0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, 0.5])
    >>> decide(r["ci95"], higher_is_better=True)
    'a'
    >>> s = describe("LION", "other", "Dice", paired([0.5, 0.6], [0.6, 0.5]), True)
    >>> s.endswith("not decided (CI contains 0)")
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lion_nnunet.errors import LionError

NOT_DECIDED = "not decided"


def paired(a: Sequence[float], b: Sequence[float], n_boot: int = 5000, seed: int = 0) -> dict:
    """Paired difference a - b over cases where both are finite.

    Returns:
        ``{"n", "median_diff", "ci95": [low, high], "p"}``: the number of cases, the median
        difference, the 2.5th and 97.5th percentiles of ``n_boot`` bootstrap medians (cases
        resampled with replacement, seeded), and the two-sided Wilcoxon signed-rank p-value
        (1.0 when every difference is 0). NaN everywhere when no case is left.
    """
    from scipy.stats import wilcoxon

    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape:
        raise LionError(
            f"paired comparison of {a.size} and {b.size} values: a paired difference needs one "
            "value of each method per case"
        )
    d = a - b
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return {"n": 0, "median_diff": float("nan"), "ci95": [float("nan")] * 2, "p": float("nan")}
    rng = np.random.default_rng(seed)
    boots = np.median(d[rng.integers(0, len(d), (n_boot, len(d)))], axis=1)
    p = float(wilcoxon(d).pvalue) if np.any(d != 0) else 1.0
    return {
        "n": len(d), "median_diff": float(np.median(d)),
        "ci95": [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))], "p": p,
    }  # fmt: skip


def decide(ci95: Sequence[float], higher_is_better: bool) -> str:
    """``"a"`` or ``"b"`` when the CI of a - b excludes 0 on that one's side, else not decided."""
    low, high = ci95
    if not (np.isfinite(low) and np.isfinite(high)) or low <= 0 <= high:
        return NOT_DECIDED
    a_higher = low > 0
    return "a" if a_higher == higher_is_better else "b"


def describe(
    a: str, b: str, measure: str, result: dict, higher_is_better: bool, unit: str = ""
) -> str:
    """One sentence: the median paired difference, its 95 % CI, and who is better or not decided.

    Args:
        a, b: The two methods' names (the difference is a - b).
        measure: What was compared, e.g. ``"Dice (cases with tumor)"``.
        result: From :func:`paired`.
        higher_is_better: True for Dice, False for false-positive volumes.
        unit: Appended to the numbers, e.g. ``" ml"``.
    """
    low, high = result["ci95"]
    if result["n"] == 0:
        return f"{measure}, {a} - {b}: no case with both values; {NOT_DECIDED}"
    winner = decide(result["ci95"], higher_is_better)
    said = {"a": f"{a} better", "b": f"{b} better"}.get(winner, f"{NOT_DECIDED} (CI contains 0)")
    return (
        f"{measure}, {a} - {b}: median difference {result['median_diff']:+.2f}{unit} "
        f"(95 % bootstrap CI {low:+.2f} to {high:+.2f}{unit}, {result['n']} "
        f"case{'s' if result['n'] != 1 else ''}): {said}"
    )
