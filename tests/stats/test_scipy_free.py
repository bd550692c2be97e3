"""The statistics a check computes without importing scipy.stats (issue 20) equal scipy.stats.

``scipy.stats`` costs ~0.4 s of CPU to import, more than the rest of a small ``retrainer check``;
the code uses ``scipy.special`` kernels (the ones scipy.stats' distributions call), a numpy
mid-rank, and scipy's exact KS code (its compiled kernel loaded without ``scipy/stats/__init__``).
Here every one is compared with scipy.stats on the same data.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from retrainer.metrics import midranks
from retrainer.stats import chi_square, srm_test, two_proportion_ztest
from retrainer.stats.floor import auc_cut_below, cut_below, min_samples_for
from retrainer.stats.numeric import _exact_small_sample_ks, _prob_outside_square, _unequal_sizes_kernel, ks_sorted
from retrainer.stats.proportions import diff_confidence_interval, required_sample_size

pytestmark = pytest.mark.filterwarnings("error")


@pytest.mark.parametrize(("n", "m", "shift", "decimals"), [
    (1, 1, 0.0, None), (1, 7, 1.0, None), (5, 5, 0.3, None), (40, 40, 0.0, 1), (120, 840, 0.2, None),
    (840, 3000, 0.0, None), (840, 3000, 0.5, 1), (2000, 2000, 0.1, None), (997, 1000, 0.05, 2),
    (9999, 10000, 0.0, None), (10000, 10000, 1.0, None), (3, 10000, 2.0, None), (6000, 9000, 0.08, None)])
@pytest.mark.parametrize("seed", [0, 1])
def test_exact_ks_equals_scipy_ks_2samp(n, m, shift, decimals, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=n), rng.normal(shift, 1.0, size=m)
    if decimals is not None:
        a, b = np.round(a, decimals), np.round(b, decimals)
    a, b = np.sort(a), np.sort(b)
    expected = stats.ks_2samp(a, b, method="auto")
    stat, p = _exact_small_sample_ks(a, b)
    assert stat == float(expected.statistic)
    assert p == pytest.approx(float(expected.pvalue), rel=1e-10, abs=1e-300)
    assert ks_sorted(a, b) == (stat, p)


def test_the_compiled_kernel_loads_and_is_scipys():
    from scipy.stats._stats_pythran import _compute_outer_prob_inside_method as scipys

    kernel = _unequal_sizes_kernel()
    assert kernel is not None
    for m, n, h in [(840, 3000, 100), (7, 13, 30), (5000, 9000, 4000)]:
        g = math.gcd(m, n)
        assert kernel(m, n, g, h) == scipys(m, n, g, h)


@pytest.mark.parametrize(("n", "h"), [(1, 1), (10, 3), (500, 37), (10000, 150)])
def test_equal_sizes_sum_is_scipys(n, h):
    from scipy.stats._stats_py import _compute_prob_outside_square

    assert _prob_outside_square(n, h) == _compute_prob_outside_square(n, h)


@pytest.mark.parametrize("seed", range(4))
def test_chi_square_equals_scipy_chi2_contingency(seed):
    rng = np.random.default_rng(seed)
    ref = {c: int(k) for c, k in zip("abcde", rng.integers(1, 500, size=5))}
    cur = {c: int(k) for c, k in zip("abcdf", rng.integers(1, 500, size=5))}
    stat, p = chi_square(ref, cur)
    table = np.array([[ref.get(c, 0) for c in "abcdef"], [cur.get(c, 0) for c in "abcdef"]])
    expected = stats.chi2_contingency(table[:, table.sum(axis=0) > 0], correction=False)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-10, abs=1e-300)
    assert p == float(stats.chi2.sf(stat, 5))


def test_proportion_tests_equal_scipy_norm_and_chi2():
    for alternative, sf in (("two-sided", lambda z: 2 * stats.norm.sf(abs(z))), ("larger", stats.norm.sf),
                            ("smaller", stats.norm.cdf)):
        z, p = two_proportion_ztest(130, 1000, 100, 1000, alternative=alternative)
        assert p == float(sf(z))
    lo, hi = diff_confidence_interval(130, 1000, 100, 1000, confidence=0.9)
    half = (hi - lo) / 2
    assert half / float(stats.norm.isf(0.05)) == pytest.approx(math.sqrt(0.13 * 0.87 / 1000 + 0.1 * 0.9 / 1000), rel=1e-12)
    observed = [5123, 4877, 1002]
    expected = np.array([5, 5, 1]) / 11 * sum(observed)
    assert srm_test(observed, [5, 5, 1]) == pytest.approx(stats.chisquare(observed, f_exp=expected).pvalue, rel=1e-12)


def test_required_sample_size_uses_the_normal_quantiles():
    z_a, z_b = stats.norm.isf(0.025), stats.norm.ppf(0.8)
    p1, p2 = 0.10, 0.12
    root = z_a * math.sqrt(2 * 0.11 * 0.89) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    assert required_sample_size(p1, 0.02, alpha=0.05, power=0.8) == math.ceil(root**2 / 0.02**2)


@pytest.mark.parametrize("floor_", [0.5, 0.7, 0.85, 0.95])
@pytest.mark.parametrize("n", [1, 7, 50, 333.7, 5000])
@pytest.mark.parametrize("alpha", [1e-4, 0.05, 0.2])
def test_floor_cuts_equal_scipy_binom_and_norm(floor_, n, alpha):
    m = int(math.floor(n))
    assert cut_below(floor_, n, tolerance=0.02, alpha=alpha) == min(floor_, int(stats.binom.ppf(alpha, m, floor_ + 0.02)) / m)
    hi, lo = floor_ + 0.02, floor_ - 0.02
    spread = stats.norm.ppf(1 - alpha) * math.sqrt(hi * (1 - hi)) + stats.norm.ppf(0.8) * math.sqrt(lo * (1 - lo))
    assert min_samples_for(floor_, tolerance=0.02, alpha=alpha, beta=0.2) == max(1, math.ceil((spread / 0.04) ** 2))
    a = floor_ + 0.02
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + 29 * (q1 - a * a) + 69 * (q2 - a * a)) / (30 * 70)
    assert auc_cut_below(floor_, 30, 70, tolerance=0.02, alpha=alpha) == min(floor_, a - stats.norm.ppf(1 - alpha) * math.sqrt(var))


@pytest.mark.parametrize("values", [[3.0], [0.0, 2.0, 3.0, 2.0], [1.0] * 6, list(np.round(np.random.default_rng(0).random(5000), 2)),
                                    list(np.random.default_rng(1).random(777))])
def test_midranks_equal_scipy_rankdata(values):
    assert np.array_equal(midranks(np.asarray(values)), stats.rankdata(values))


def test_without_the_compiled_kernel_scipy_stats_answers(monkeypatch):
    import retrainer.stats.numeric as numeric

    monkeypatch.setattr(numeric, "_outer_prob_kernel", [None])  # a scipy build without the file
    rng = np.random.default_rng(3)
    a, b = np.sort(rng.normal(size=300)), np.sort(rng.normal(0.2, 1.0, size=700))
    expected = stats.ks_2samp(a, b)
    assert _exact_small_sample_ks(a, b) == (float(expected.statistic), float(expected.pvalue))
