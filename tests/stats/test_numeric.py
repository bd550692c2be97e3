"""KS and Wasserstein against scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from retrainer.errors import StatisticsError
from retrainer.stats import compare_sorted, ks_2samp_stat, ks_sorted, wasserstein, wasserstein_sorted
from retrainer.stats.numeric import _ks_pvalue

pytestmark = pytest.mark.filterwarnings("error")


def _samples(n, m, shift, decimals=None, seed=0):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(shift, 1.0, size=m)
    if decimals is not None:  # many ties
        a, b = np.round(a, decimals), np.round(b, decimals)
    return a, b


@pytest.mark.parametrize(
    ("n", "m", "shift", "decimals"),
    [(1, 1, 0.0, None), (3, 8, 0.5, None), (200, 300, 0.1, 1), (5000, 5000, 0.05, None),
     (12000, 30000, 0.02, None), (20000, 15000, 0.0, 1), (50000, 40000, 0.03, 2)],
)
def test_ks_and_wasserstein_equal_scipy(n, m, shift, decimals):
    a, b = _samples(n, m, shift, decimals)
    expected = stats.ks_2samp(a, b)
    stat, p = ks_2samp_stat(a, b)
    assert stat == float(expected.statistic)  # same float, not just close
    assert p == pytest.approx(float(expected.pvalue), rel=1e-9, abs=1e-300)
    assert wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)
    a_s, b_s = np.sort(a), np.sort(b)
    assert ks_sorted(a_s, b_s) == (stat, p)
    cmp = compare_sorted(a_s, b_s)
    assert (cmp.ks, cmp.ks_pvalue) == (stat, p)
    assert cmp.wasserstein == wasserstein_sorted(a_s, b_s)


@pytest.mark.parametrize("en", [141, 1_000, 20_000, 100_000])
@pytest.mark.parametrize("x", [1.4833, 2.0, 3.0, 5.0, 10.0, 19.2])
def test_tail_pvalue_equals_scipy_kstwo(en, x):
    # the branch where scipy sums the whole Birnbaum-Tingey series and we sum a stride of it
    d = x / np.sqrt(en)
    expected = float(stats.kstwo.sf(d, en))
    assert _ks_pvalue(d, 2 * en, 2 * en) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_tail_pvalue_equals_scipy_at_large_n():
    d = 3.0 / np.sqrt(250_000)  # scipy needs ~0.5 s for this one value
    assert _ks_pvalue(d, 500_000, 500_000) == pytest.approx(float(stats.kstwo.sf(d, 250_000)), rel=1e-9)


def test_ties_across_samples_do_not_inflate_ks():
    a = np.array([0.0, 0.0, 1.0, 1.0])
    b = np.array([0.0, 0.0, 1.0, 1.0])
    assert ks_2samp_stat(a, b) == (0.0, 1.0)
    big = np.repeat(np.arange(5.0), 4000)
    cmp = compare_sorted(big, big)
    assert (cmp.ks, cmp.ks_pvalue, cmp.wasserstein) == (0.0, 1.0, 0.0)


def test_constant_samples():
    assert wasserstein([2.0] * 20000, [2.0] * 30000) == 0.0
    assert ks_2samp_stat([2.0] * 20000, [2.0] * 30000) == (0.0, 1.0)
    assert wasserstein([2.0] * 10, [5.0] * 10) == 3.0
    assert ks_2samp_stat([2.0] * 10, [5.0] * 10)[0] == 1.0


def test_nan_and_inf_are_dropped():
    a, b = _samples(300, 200, 0.3)
    dirty = np.concatenate([b, [np.nan, np.inf, -np.inf]])
    assert ks_2samp_stat(a, dirty) == ks_2samp_stat(a, b)
    assert wasserstein(a, dirty) == wasserstein(a, b)


@pytest.mark.parametrize("bad", [[], [np.nan, np.nan]])
def test_empty_or_all_nan_raises(bad):
    with pytest.raises(StatisticsError, match="no finite values"):
        ks_2samp_stat([1.0, 2.0], bad)
    with pytest.raises(StatisticsError, match="no finite values"):
        wasserstein(bad, [1.0])


def test_sorted_variants_check_their_input():
    with pytest.raises(StatisticsError, match="sorted"):
        ks_sorted([2.0, 1.0], [1.0, 2.0])
    with pytest.raises(StatisticsError, match="sorted"):
        wasserstein_sorted([1.0, np.nan], [1.0])
    with pytest.raises(StatisticsError, match="empty"):
        compare_sorted([], [1.0])
