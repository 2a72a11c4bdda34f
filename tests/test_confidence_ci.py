"""The bootstrap CI of the per-lesion AUROC (benchmarks/confidence.py), against hand-worked
cases and an exact enumeration of every resample."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def confidence():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import confidence

        yield confidence
    finally:
        sys.path.remove(str(BENCHMARKS))


def _rows(cases: dict[str, list[tuple[float, bool]]]) -> list[dict]:
    return [{"case_id": case, "confidence": score, "true_positive": true}
            for case, lesions in cases.items() for score, true in lesions]  # fmt: skip


def _mann_whitney(lesions: list[tuple[float, bool]]) -> float | None:
    """AUROC by counting pairs, written out: (true > false) + half of the ties, over all pairs."""
    pos = [s for s, t in lesions if t]
    neg = [s for s, t in lesions if not t]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def test_every_resample_has_the_same_auroc(confidence) -> None:
    # every case holds the same lesions: true 0.9, 0.8, 0.3 and false 0.5, so any resample is
    # k copies of one set; pairs (true, false): 0.9 > 0.5, 0.8 > 0.5, 0.3 < 0.5 -> AUROC 2/3
    same = [(0.9, True), (0.8, True), (0.3, True), (0.5, False)]
    rows = _rows({f"c{k}": same for k in range(5)})
    ci = confidence.auroc_ci(rows, "confidence")
    assert ci == {"low": 0.667, "high": 0.667, "resamples_used": 2000}


def test_two_cases_bounds_by_hand(confidence) -> None:
    # case A: true 0.9, false 0.1 (right); case B: true 0.2, false 0.8 (wrong). Two draws:
    #   AA (1/4): AUROC 1;  BB (1/4): AUROC 0;
    #   AB or BA (1/2): trues 0.9, 0.2 vs falses 0.1, 0.8: 0.9>0.1, 0.9>0.8, 0.2>0.1, 0.2<0.8 -> 3/4
    # so a quarter of the resamples sit at 0 and a quarter at 1: the 2.5th percentile is 0 and
    # the 97.5th is 1, and the middle half (25th to 75th percentile) lies in 0..1 around 0.75.
    rows = _rows({"A": [(0.9, True), (0.1, False)], "B": [(0.2, True), (0.8, False)]})
    assert confidence.auroc_ci(rows, "confidence") == {"low": 0.0, "high": 1.0,
                                                       "resamples_used": 2000}  # fmt: skip
    # a third holdout case C without a predicted lesion, three draws: (C, C, C) (1/27) holds no
    # lesion and is left out; draws of B and C alone (8/27 - 1/27) give 0, of A and C alone
    # (7/27) give 1: over a quarter of the kept resamples at each end, so still 0 to 1
    ci = confidence.auroc_ci(rows, "confidence", cases=3)
    assert ci["low"] == 0.0 and ci["high"] == 1.0 and ci["resamples_used"] < 2000


def test_percentiles_equal_those_of_every_resample_enumerated(confidence) -> None:
    """4 cases, 4**4 equally likely ordered resamples: the quantiles of their exact AUROC
    distribution, which a bootstrap of 20000 cannot miss when the distribution function is
    nowhere near 2.5 % or 97.5 % (here >= 1.4 %, 13 standard errors of 20000 draws, away)."""
    cases = {  # one true and one false lesion each: A and C right, B and D wrong
        "A": [(0.8, True), (0.7, False)],
        "B": [(0.1, True), (0.3, False)],
        "C": [(0.2, True), (0.1, False)],
        "D": [(0.3, True), (0.4, False)],
    }
    values = []
    for draw in itertools.product(cases, repeat=4):
        value = _mann_whitney([lesion for c in draw for lesion in cases[c]])
        if value is not None:
            values.append(value)
    atoms, counts = np.unique(values, return_counts=True)
    cdf = np.cumsum(counts) / counts.sum()
    assert not np.any(np.abs(cdf - 0.025) < 0.01) and not np.any(np.abs(cdf - 0.975) < 0.01)
    low = atoms[np.argmax(cdf >= 0.025)]  # the smallest AUROC with >= 2.5 % at or below it
    high = atoms[np.argmax(cdf > 0.975)]
    assert atoms[0] < low < high < atoms[-1]  # inner bounds, not the extremes of the support
    ci = confidence.auroc_ci(_rows(cases), "confidence", resamples=20000, seed=1)
    assert (ci["low"], ci["high"]) == (round(float(low), 3), round(float(high), 3))
    assert low < _mann_whitney([x for lesions in cases.values() for x in lesions]) < high


def test_no_ci_without_both_kinds(confidence) -> None:
    assert confidence.auroc_ci(_rows({"A": [(0.9, False), (0.2, False)]}), "confidence") is None


def test_recompute_ci_from_the_stored_csv(confidence, tmp_path: Path) -> None:
    stored = BENCHMARKS / "results" / "confidence"
    folder = tmp_path / "confidence"
    shutil.copytree(stored, folder)
    summary = confidence.recompute_ci(folder)
    assert json.loads((folder / "summary.json").read_text()) == summary
    assert summary == json.loads((stored / "summary.json").read_text())  # what the docs show
    demo = summary["models"]["demo model"]
    ci = demo["auroc_confidence_ci"]
    assert ci["low"] < demo["auroc_confidence"] <= ci["high"] <= 1.0
    assert summary["models"]["fine-tuned folds"]["auroc_confidence_ci"] is None  # no true lesion
