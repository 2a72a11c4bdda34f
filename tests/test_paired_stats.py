"""Paired differences and their verdict, against an exact (enumerated) bootstrap."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from lion_nnunet.analysis.paired_stats import NOT_DECIDED, decide, describe, paired


def exact_bootstrap_ci(d: list[float]) -> tuple[float, float]:
    """2.5th/97.5th percentiles of the median over every one of the n**n resamples of ``d``."""
    medians = [np.median(s) for s in itertools.product(d, repeat=len(d))]
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


#: Differences leaning positive whose CI still contains 0: a bootstrap median equals -0.3 when
#: at least 3 of 5 draws are -0.3, P = P(Binomial(5, 1/5) >= 3) = 0.058, far above 2.5 %.
LEANING_UP = [-0.3, -0.1, 0.2, 0.4, 0.5]


@pytest.mark.parametrize("sign", [1, -1])
def test_ci_matches_the_exact_bootstrap_and_contains_0_either_way(sign: int) -> None:
    d = [sign * v for v in LEANING_UP]
    low, high = exact_bootstrap_ci(d)
    assert (low, high) == pytest.approx(sorted([sign * -0.3, sign * 0.5]))
    assert low < 0 < high
    b = np.full(5, 0.5)
    r = paired(b + np.array(d), b)
    assert r["median_diff"] == pytest.approx(sign * 0.2)  # leans one way ...
    assert r["ci95"] == pytest.approx([low, high])
    for higher_is_better in (True, False):  # ... and decides nothing, whichever way is better
        assert decide(r["ci95"], higher_is_better) == NOT_DECIDED
    sentence = describe("LION", "other", "Dice", r, higher_is_better=True)
    assert f"median difference {sign * 0.2:+.2f}" in sentence
    assert f"95 % bootstrap CI {low:+.2f} to {high:+.2f}, 5 cases" in sentence
    assert sentence.endswith("not decided (CI contains 0)")


def test_a_ci_that_excludes_0_names_the_better_method() -> None:
    a = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    up = paired(a, a - np.array([0.1, 0.2, 0.1, 0.3, 0.2]))  # every difference > 0
    low, high = exact_bootstrap_ci([0.1, 0.2, 0.1, 0.3, 0.2])
    assert low > 0 and up["ci95"] == pytest.approx([low, high])
    assert decide(up["ci95"], higher_is_better=True) == "a"  # higher Dice: a better
    assert decide(up["ci95"], higher_is_better=False) == "b"  # more FP volume: b better
    assert describe("LION", "other", "Dice", up, True).endswith(": LION better")
    down = paired(a - 0.2, a)  # every difference -0.2
    assert down["ci95"] == pytest.approx([-0.2, -0.2])
    assert describe("LION", "other", "FP volume", down, False, " ml").endswith(": LION better")
    assert describe("LION", "other", "Dice", down, True).endswith(": other better")


def test_no_common_finite_case_is_not_decided() -> None:
    r = paired([np.nan, 0.5], [0.4, np.nan])
    assert r["n"] == 0 and decide(r["ci95"], True) == NOT_DECIDED
    assert describe("a", "b", "Dice", r, True).endswith(NOT_DECIDED)
