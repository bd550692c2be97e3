"""A/B statistics against statsmodels / scipy, and the mSPRT null simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize, proportions_ztest

from retrainer.errors import StatisticsError
from retrainer.stats import (
    diff_confidence_interval,
    msprt_pvalue,
    required_sample_size,
    srm_test,
    two_proportion_ztest,
)
from retrainer.stats.proportions import _msprt_look_pvalues

pytestmark = pytest.mark.filterwarnings("error")

CASES = [(100, 1000, 130, 1000), (5, 40, 1, 37), (4800, 50000, 5100, 50500), (0, 10, 3, 10)]


@pytest.mark.parametrize(("sa", "na", "sb", "nb"), CASES)
def test_ztest_equals_statsmodels(sa, na, sb, nb):
    z_expected, p_expected = proportions_ztest([sb, sa], [nb, na])
    z, p = two_proportion_ztest(sa, na, sb, nb)
    assert z == pytest.approx(z_expected, rel=1e-12)
    assert p == pytest.approx(p_expected, rel=1e-9)


@pytest.mark.parametrize("alternative", ["larger", "smaller"])
@pytest.mark.parametrize(("sa", "na", "sb", "nb"), CASES)
def test_one_sided_ztest_equals_statsmodels(sa, na, sb, nb, alternative):
    z_expected, p_expected = proportions_ztest([sb, sa], [nb, na], alternative=alternative)
    z, p = two_proportion_ztest(sa, na, sb, nb, alternative=alternative)
    assert z == pytest.approx(z_expected, rel=1e-12)
    assert p == pytest.approx(p_expected, rel=1e-9)


@pytest.mark.parametrize(("sa", "na", "sb", "nb"), CASES)
def test_wald_interval_equals_statsmodels(sa, na, sb, nb):
    low_e, high_e = confint_proportions_2indep(sb, nb, sa, na, method="wald", compare="diff")
    low, high = diff_confidence_interval(sa, na, sb, nb)
    assert low == pytest.approx(low_e, abs=1e-12)
    assert high == pytest.approx(high_e, abs=1e-12)


def test_ztest_degenerate_inputs():
    with pytest.raises(StatisticsError, match="variance is 0"):
        two_proportion_ztest(0, 100, 0, 100)
    with pytest.raises(StatisticsError, match="no observations"):
        two_proportion_ztest(0, 0, 1, 10)
    with pytest.raises(StatisticsError, match="between 0 and n"):
        two_proportion_ztest(11, 10, 1, 10)


@pytest.mark.parametrize(
    ("observed", "ratios"), [([5000, 5000], [1, 1]), ([5100, 4900], [0.5, 0.5]), ([900, 100], [0.9, 0.1]), ([3, 5, 9], [1, 1, 2])]
)
def test_srm_equals_scipy_chisquare(observed, ratios):
    r = np.asarray(ratios, float)
    expected = stats.chisquare(observed, f_exp=r / r.sum() * sum(observed)).pvalue
    assert srm_test(observed, ratios) == pytest.approx(expected, rel=1e-9)


def test_srm_flags_broken_split():
    assert srm_test([5300, 4700], [0.5, 0.5]) < 1e-8


@pytest.mark.parametrize(("p0", "mde"), [(0.10, 0.02), (0.05, 0.01), (0.30, -0.05), (0.5, 0.1)])
def test_required_sample_size(p0, mde):
    p1 = p0 + mde
    z_a, z_b = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    pbar = (p0 + p1) / 2
    closed = (z_a * math.sqrt(2 * pbar * (1 - pbar)) + z_b * math.sqrt(p0 * (1 - p0) + p1 * (1 - p1))) ** 2 / mde**2
    n = required_sample_size(p0, mde)
    assert n == math.ceil(closed)
    # statsmodels' arcsine (Cohen's h) approximation lands within a couple of percent
    approx = NormalIndPower().solve_power(abs(proportion_effectsize(p1, p0)), alpha=0.05, power=0.8)
    assert n == pytest.approx(approx, rel=0.03)


def test_required_sample_size_rejects_nonsense():
    with pytest.raises(StatisticsError):
        required_sample_size(0.95, 0.1)
    with pytest.raises(StatisticsError):
        required_sample_size(0.1, 0.0)


def _simulate(p_a, p_b, n_sims=2000, looks=50, batch=200, seed=0):
    """Cumulative counts at each look, shape (n_sims, looks)."""
    rng = np.random.default_rng(seed)
    sa = rng.binomial(batch, p_a, size=(n_sims, looks)).cumsum(axis=1).astype(float)
    sb = rng.binomial(batch, p_b, size=(n_sims, looks)).cumsum(axis=1).astype(float)
    n = np.broadcast_to(np.arange(1, looks + 1) * float(batch), sa.shape)
    return sa, n, sb, n


def test_msprt_keeps_false_positive_rate_under_peeking():
    alpha = 0.05
    sa, na, sb, nb = _simulate(0.10, 0.10)
    always_valid = _msprt_look_pvalues(sa, na, sb, nb, tau2=1e-4).min(axis=1)
    fpr = float(np.mean(always_valid <= alpha))
    assert fpr <= alpha

    # the same peeking with a plain z-test after every batch inflates the error rate
    pooled = (sa + sb) / (na + nb)
    z = (sb / nb - sa / na) / np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    naive_fpr = float(np.mean((2 * stats.norm.sf(np.abs(z))).min(axis=1) <= alpha))
    assert naive_fpr > 2 * alpha


def test_msprt_detects_a_real_lift():
    sa, na, sb, nb = _simulate(0.10, 0.13, n_sims=500, seed=1)
    power = float(np.mean(_msprt_look_pvalues(sa, na, sb, nb, tau2=1e-4).min(axis=1) <= 0.05))
    assert power > 0.9


def test_msprt_public_function_is_running_minimum():
    sa, na, sb, nb = (np.array(x, float) for x in ([10, 25, 45], [100, 200, 300], [20, 50, 80], [100, 200, 300]))
    per_look = _msprt_look_pvalues(sa, na, sb, nb, 1e-4)
    assert msprt_pvalue(sa, na, sb, nb) == per_look.min()
    assert msprt_pvalue(10, 100, 10, 100) == 1.0  # no difference, no evidence
    assert msprt_pvalue(0, 100, 0, 100) == 1.0  # no variance yet, no evidence
    with pytest.raises(StatisticsError, match="tau2"):
        msprt_pvalue(1, 10, 2, 10, tau2=0)
