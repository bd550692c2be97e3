"""The p-value of a metric's cut (stats/floor.py) against scipy.stats and Hanley & McNeil's formula.

The null is "the metric is at least floor + tolerance"; the p-value is the smallest alpha at which
the cut would fire: the exact binomial tail below the floor, 1 at or above it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from retrainer.stats.floor import auc_cut_below, auc_pvalue_below, cut_below, pvalue_below

FLOORS = (0.5, 0.7, 0.85, 0.9)


@pytest.mark.parametrize("floor", FLOORS)
def test_below_the_floor_the_pvalue_is_the_exact_binomial_tail(floor):
    for n in (1, 5, 10, 30, 50, 147, 400, 2000):
        for x in range(0, n + 1, max(1, n // 60)):
            if x / n >= floor:
                assert pvalue_below(floor, x / n, n) == 1.0  # the cut never fires at or above the floor
                continue
            got = pvalue_below(floor, x / n, n)
            assert got == pytest.approx(stats.binom.cdf(x, n, floor + 0.05), rel=1e-12, abs=1e-300)
            assert got == pytest.approx(stats.binomtest(x, n, floor + 0.05, alternative="less").pvalue,
                                        rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("floor", FLOORS)
@pytest.mark.parametrize("alpha", [0.01, 0.05])
def test_the_cut_fires_exactly_when_the_pvalue_is_below_alpha(floor, alpha):
    cut_is_floor = small_n_not_fired = 0
    for n in range(1, 601):
        cut = cut_below(floor, n, alpha=alpha)
        cut_is_floor += cut == floor
        for x in range(n + 1):
            p = pvalue_below(floor, x / n, n)
            assert (x / n < cut) == (p < alpha), (n, x, cut, p)
            if cut < floor and x / n >= cut:
                small_n_not_fired += 1
                assert p >= alpha  # a window that does not fire at small n never has a small p
            if cut == floor and floor <= x / n:
                # Where the cut is the floor itself, the plain tail can be below alpha while the rule
                # does not fire (inside the band, above the floor): the rule's p is 1 there.
                assert p == 1.0
    assert cut_is_floor and small_n_not_fired  # both regimes were exercised


def test_f1s_fractional_row_count_is_judged_on_floor_n_rows_as_the_cut_is():
    # f1 = TP / ((positives + predicted positives) / 2): 40 / 50.5 on floor(50.5) = 50 rows.
    for tp in range(0, 51):
        value = tp / 50.5
        p = pvalue_below(0.7, value, 50.5)
        assert (value < cut_below(0.7, 50.5)) == (p < 0.01)
        if value < 0.7:
            assert p == pytest.approx(stats.binom.cdf(math.floor(value * 50), 50, 0.75), rel=1e-12)


@pytest.mark.parametrize(("floor", "n"), [(0.85, 147), (0.7, 30), (0.9, 1000)])
def test_the_pvalue_is_valid_under_the_null_exactly(floor, n):
    # P(p <= u) <= u at the null's edge (metric = floor + tolerance), summed over the exact pmf.
    x = np.arange(n + 1)
    pmf = stats.binom.pmf(x, n, floor + 0.05)
    p = np.array([pvalue_below(floor, k / n, n) for k in x])
    for u in (0.001, 0.01, 0.05, 0.2, 0.5):
        assert pmf[p <= u].sum() <= u + 1e-12


def hanley_mcneil_se(auc: float, n_pos: int, n_neg: int) -> float:
    """Hanley & McNeil (1982), eq. 2, with Q1 = A / (2 - A) and Q2 = 2A^2 / (1 + A)."""
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    return math.sqrt((auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg))


@pytest.mark.parametrize(("floor", "n_pos", "n_neg"), [(0.7, 10, 40), (0.8, 60, 60), (0.75, 300, 1200), (0.9, 3, 5)])
def test_roc_auc_pvalue_is_the_normal_tail_with_hanley_mcneils_standard_error(floor, n_pos, n_neg):
    a = floor + 0.05
    se = hanley_mcneil_se(a, n_pos, n_neg)
    for auc in np.linspace(0.3, 1.0, 71):
        p = auc_pvalue_below(floor, float(auc), n_pos, n_neg)
        if auc >= floor:
            assert p == 1.0
        else:
            assert p == pytest.approx(stats.norm.cdf((auc - a) / se), rel=1e-12, abs=1e-300)
        for alpha in (0.01, 0.05):
            assert (auc < auc_cut_below(floor, n_pos, n_neg, alpha=alpha)) == (p < alpha)


def test_no_rows_no_evidence():
    assert pvalue_below(0.85, 0.0, 0) == 1.0 and auc_pvalue_below(0.7, 0.2, 0, 10) == 1.0
    assert pvalue_below(0.96, 0.9, 100) == 0.0 and cut_below(0.96, 100) == 0.96  # null "all right": one miss refutes
