"""Paired, PPI and clustered estimates against brute force, scipy's bootstrap, statsmodels and
the PPI++ closed form (ppi_py's formulas; the package itself pulls numba, so it is not a test
dependency)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import statsmodels.api as sm
from sklearn.metrics import f1_score

from retrainer.errors import StatisticsError
from retrainer.stats.paired import (
    Estimate,
    clustered_difference,
    paired_bootstrap,
    paired_difference,
    ppi_from_moments,
    ppi_lambda,
    ppi_paired_difference,
)

RNG = np.random.default_rng(19)


def _pairs(n: int, d: float, delta: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of two models on the same rows: they disagree on a share d, the challenger
    winning (d + delta) / 2 of the rows."""
    champ = (rng.random(n) < 0.8).astype(float)
    u = rng.random(n)
    plus, minus = (d + delta) / 2, (d - delta) / 2
    chal = champ.copy()
    chal[u < plus] = 1.0
    chal[(u >= plus) & (u < plus + minus)] = 0.0
    return chal, champ


# -- paired difference -------------------------------------------------------------------------


def test_paired_difference_is_the_mean_and_se_of_the_row_differences() -> None:
    chal, champ = _pairs(500, 0.12, 0.03, RNG)
    e = paired_difference(chal, champ)
    d = chal - champ
    assert e.mean == pytest.approx(sum(d) / len(d))
    brute_var = sum((x - e.mean) ** 2 for x in d) / (len(d) - 1)
    assert e.se == pytest.approx(math.sqrt(brute_var / len(d)))
    assert e.n == 500 and e.n_unlabelled == 0
    lo, hi = e.interval(0.95)
    assert (lo, hi) == pytest.approx((e.mean - 1.959964 * e.se, e.mean + 1.959964 * e.se), rel=1e-5)


def test_paired_difference_is_tighter_than_unpaired_arms() -> None:
    chal, champ = _pairs(2000, 0.10, 0.02, RNG)
    paired = paired_difference(chal, champ).se
    unpaired = math.sqrt(chal.var(ddof=1) / chal.size + champ.var(ddof=1) / champ.size)
    assert paired < 0.6 * unpaired


def test_paired_difference_without_two_rows_has_no_evidence() -> None:
    one = paired_difference([1.0], [0.0])
    assert one.mean == 1.0 and math.isinf(one.se) and not one.informative
    assert one.interval() == (-math.inf, math.inf)
    assert one.to_dict()["se"] is None and one.to_dict()["interval_95"] == [None, None]
    none = paired_difference([], [])
    assert none.n == 0 and not none.informative
    with pytest.raises(StatisticsError, match="same rows"):
        paired_difference([1, 0], [1])
    with pytest.raises(StatisticsError, match="missing"):
        paired_difference([1, np.nan], [1, 0])


# -- paired bootstrap ----------------------------------------------------------------------------


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    """Binary f1 (sklearn's definition, 0 when undefined), fast enough to bootstrap."""
    tp = float(np.sum((p == 1) & (y == 1)))
    denom = float(np.sum(p == 1) + np.sum(y == 1))
    return 0.0 if denom == 0 else 2 * tp / denom


def test_the_fast_f1_is_sklearns() -> None:
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert _f1(y, p) == pytest.approx(f1_score(y, p))


def test_paired_bootstrap_point_is_the_full_data_difference_and_se_matches_scipy() -> None:
    rng = np.random.default_rng(5)
    n = 400
    y = (rng.random(n) < 0.4).astype(int)
    champ = np.where(rng.random(n) < 0.75, y, 1 - y)
    chal = np.where(rng.random(n) < 0.9, champ, np.where(rng.random(n) < 0.7, y, 1 - y))
    est = paired_bootstrap(y, chal, champ, _f1, n_boot=1500, seed=3)
    assert est.mean == pytest.approx(_f1(y, chal) - _f1(y, champ))
    ref = scipy.stats.bootstrap((y, chal, champ), lambda a, b, c: _f1(a, b) - _f1(a, c), paired=True,
                                vectorized=False, n_resamples=1500, random_state=11, method="percentile")
    assert est.se == pytest.approx(ref.standard_error, rel=0.12)
    assert est.n == n


def test_paired_bootstrap_of_accuracy_agrees_with_the_analytic_paired_se() -> None:
    chal, champ = _pairs(1500, 0.12, 0.02, np.random.default_rng(8))
    y = np.ones(1500)  # accuracy of "prediction == 1" is the correctness itself

    def acc(yy: np.ndarray, p: np.ndarray) -> float:
        return float(np.mean(yy == p))

    boot = paired_bootstrap(y, chal, champ, acc, n_boot=2000, seed=1)
    analytic = paired_difference(chal, champ)
    assert boot.mean == pytest.approx(analytic.mean)
    assert boot.se == pytest.approx(analytic.se, rel=0.08)


def test_paired_bootstrap_rejects_misaligned_rows() -> None:
    with pytest.raises(StatisticsError):
        paired_bootstrap([1, 0, 1], [1, 0], [1, 0, 1], _f1)
    assert math.isinf(paired_bootstrap([], [], [], _f1).se)


# -- PPI -----------------------------------------------------------------------------------------


def _ppi_reference(y: np.ndarray, f: np.ndarray, fu: np.ndarray) -> tuple[float, float, float]:
    """PPI++ for a mean written out from Angelopoulos, Duchi & Zrnic (2023), with ppi_py's lambda
    (covariance over n, pooled proxy variance with ddof 1) and sample variances (ddof 1)."""
    n, big_n = len(y), len(fu)
    cov = sum((a - y.mean()) * (b - f.mean()) for a, b in zip(y, f, strict=True)) / n
    pooled = np.concatenate([f, fu])
    lam = min(1.0, max(0.0, cov / ((1 + n / big_n) * pooled.var(ddof=1))))
    theta = lam * fu.mean() + (y - lam * f).mean()
    se = math.sqrt(lam**2 * fu.var(ddof=1) / big_n + (y - lam * f).var(ddof=1) / n)
    return theta, se, lam


def _proxy_world(n: int, big_n: int, rng: np.random.Generator, *, bias: float = 0.0, scale: float = 1.0,
                 delta: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Y in {-1, 0, 1} with E[Y | x] = g(x); the proxy is scale * g(x) + bias (mis-calibrated
    unless scale 1, bias 0)."""
    def draw(m: int) -> tuple[np.ndarray, np.ndarray]:
        # Rows differ in how likely the models disagree and, mostly, in who wins: corr(Y, g) ~ 0.6.
        p_disagree = rng.uniform(0.0, 0.5, m)
        g = np.clip(rng.normal(delta / 0.25, 3.0, m), -0.95, 0.95) * p_disagree  # E[Y | x]
        u = rng.random(m)
        y = np.where(u < (p_disagree + g) / 2, 1.0, np.where(u < p_disagree, -1.0, 0.0))
        return y, scale * g + bias
    y, f = draw(n)
    _, fu = draw(big_n)
    return y, f, fu


def test_ppi_matches_the_closed_form() -> None:
    y, f, fu = _proxy_world(300, 3000, np.random.default_rng(2))
    est = ppi_paired_difference(y, f, fu)
    theta, se, lam = _ppi_reference(y, f, fu)
    assert est.lam == pytest.approx(lam)
    assert est.mean == pytest.approx(theta)
    assert est.se == pytest.approx(se)
    assert (est.n, est.n_unlabelled) == (300, 3000)
    assert ppi_lambda(y, f, fu) == pytest.approx(lam)


def test_ppi_matches_ppi_py_when_it_is_installed() -> None:
    """ppi_py pulls numba, so it is not a dependency; installed elsewhere (pip install --target)
    it agreed to 1e-15 on the point and 0.00015 on the interval ends over 20 windows (it uses
    ddof 0 standard deviations, we use ddof 1, so ours is a hair wider)."""
    ppi_py = pytest.importorskip("ppi_py")
    for seed in range(5):
        y, f, fu = _proxy_world(200 + 10 * seed, 2000, np.random.default_rng(seed), bias=0.02 * (seed % 3))
        est = ppi_paired_difference(y, f, fu)
        lo, hi = ppi_py.ppi_mean_ci(y, f, fu, alpha=0.05)
        assert est.mean == pytest.approx(float(np.ravel(ppi_py.ppi_mean_pointestimate(y, f, fu))[0]), abs=1e-12)
        mine = est.interval(0.95)
        assert mine[0] == pytest.approx(float(np.ravel(lo)[0]), abs=5e-4)
        assert mine[1] == pytest.approx(float(np.ravel(hi)[0]), abs=5e-4)


def test_ppi_with_lambda_zero_is_the_classical_paired_estimate_and_one_is_plain_ppi() -> None:
    y, f, fu = _proxy_world(200, 2000, np.random.default_rng(4))
    classical = paired_difference(y, np.zeros_like(y))
    zero = ppi_paired_difference(y, f, fu, lam=0.0)
    assert (zero.mean, zero.se) == pytest.approx((classical.mean, classical.se))
    one = ppi_paired_difference(y, f, fu, lam=1.0)
    assert one.mean == pytest.approx(fu.mean() + (y - f).mean())
    assert one.se == pytest.approx(math.sqrt(fu.var(ddof=1) / fu.size + (y - f).var(ddof=1) / y.size))
    with pytest.raises(StatisticsError, match="lam"):
        ppi_paired_difference(y, f, fu, lam=1.5)


def test_ppi_without_labelled_pairs_reports_the_proxy_mean_but_no_evidence() -> None:
    _, _, fu = _proxy_world(0, 500, np.random.default_rng(6))
    est = ppi_paired_difference([], [], fu)
    assert est.mean == pytest.approx(fu.mean())
    assert math.isinf(est.se) and est.n == 0 and est.n_unlabelled == 500 and not est.informative
    no_proxy = ppi_paired_difference([1.0, 0.0, -1.0, 0.0], [0.1, 0.0, -0.1, 0.0], [])
    assert no_proxy.lam == 0.0 and no_proxy.mean == pytest.approx(0.0)


def test_ppi_moments_form_is_the_rows_form() -> None:
    y, f, fu = _proxy_world(150, 900, np.random.default_rng(12))
    est = ppi_paired_difference(y, f, fu)
    pooled = np.concatenate([f, fu])
    theta, se, lam = ppi_from_moments(
        150, 900, mean_y=y.mean(), mean_f=f.mean(), mean_fu=fu.mean(), var_y=y.var(ddof=1), var_f=f.var(ddof=1),
        var_fu=fu.var(ddof=1), cov_yf=np.cov(y, f)[0, 1], var_f_pooled=pooled.var(ddof=1))
    assert (float(theta), float(se), float(lam)) == pytest.approx((est.mean, est.se, est.lam))


def test_a_good_proxy_tightens_the_interval() -> None:
    ratios = []
    for seed in range(20):
        y, f, fu = _proxy_world(200, 4000, np.random.default_rng(100 + seed))
        ratios.append(ppi_paired_difference(y, f, fu).se / paired_difference(y, np.zeros_like(y)).se)
    assert np.mean(ratios) < 0.9


@pytest.mark.parametrize(("bias", "scale"), [(0.05, 1.0), (-0.03, 1.6), (0.02, 0.4)])
def test_ppi_interval_covers_at_least_93_percent_with_a_miscalibrated_proxy(bias: float, scale: float) -> None:
    """1,000 simulated shadow windows of 150 labelled and 1,500 label-free pairs; the proxy is
    biased and over- or under-confident, the truth is E[Y] of the window's distribution."""
    rng = np.random.default_rng(int(1000 * bias + 10 * scale) % 2**31)
    truth_rng = np.random.default_rng(0)
    y_big, _, _ = _proxy_world(400_000, 1, truth_rng)
    truth = float(y_big.mean())
    cover = proxy_only = 0
    for _ in range(1000):
        y, f, fu = _proxy_world(150, 1500, rng, bias=bias, scale=scale)
        lo, hi = ppi_paired_difference(y, f, fu).interval(0.95)
        cover += lo <= truth <= hi
        half = 1.96 * fu.std(ddof=1) / math.sqrt(fu.size)
        proxy_only += fu.mean() - half <= truth <= fu.mean() + half
    assert cover / 1000 >= 0.93
    assert proxy_only / 1000 < 0.5  # the proxy alone is off: the labelled rectifier is what keeps PPI valid


# -- clustered difference (A/B by unit) ---------------------------------------------------------


def _ab_data(rng: np.random.Generator, units: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    unit_arm = rng.random(units) < 0.3
    unit_effect = rng.normal(0, 0.15, units)
    sizes = rng.integers(1, 30, units)
    unit = np.repeat(np.arange(units), sizes)
    arm = np.repeat(unit_arm, sizes)
    p = np.clip(0.78 + 0.03 * arm + np.repeat(unit_effect, sizes), 0.01, 0.99)
    values = (rng.random(unit.size) < p).astype(float)
    return values, arm.astype(int), unit


@pytest.mark.parametrize("small_sample", [True, False])
def test_clustered_difference_equals_statsmodels_cluster_robust_ols(small_sample: bool) -> None:
    values, arm, unit = _ab_data(np.random.default_rng(7))
    est = clustered_difference(values, arm, unit, small_sample=small_sample)
    fit = sm.OLS(values, sm.add_constant(arm.astype(float))).fit(
        cov_type="cluster", cov_kwds={"groups": unit, "use_correction": small_sample})
    assert est.mean == pytest.approx(fit.params[1])
    assert est.se == pytest.approx(fit.bse[1], rel=1e-9)
    naive = math.sqrt(values[arm == 1].var(ddof=1) / (arm == 1).sum() + values[arm == 0].var(ddof=1) / (arm == 0).sum())
    assert est.se > 1.3 * naive  # many requests per unit, correlated within a unit


def test_clustered_difference_handles_a_unit_seen_in_both_arms_like_statsmodels() -> None:
    rng = np.random.default_rng(9)
    unit = rng.integers(0, 80, 2000)
    arm = rng.random(2000) < 0.5
    values = rng.random(2000) + 0.1 * arm + 0.05 * (unit % 7)
    est = clustered_difference(values, arm, unit)
    fit = sm.OLS(values, sm.add_constant(arm.astype(float))).fit(cov_type="cluster", cov_kwds={"groups": unit})
    assert est.se == pytest.approx(fit.bse[1], rel=1e-9)


def test_clustered_difference_takes_arm_names_and_says_what_is_wrong() -> None:
    values, arm, unit = _ab_data(np.random.default_rng(1), units=50)
    named = np.where(arm == 1, "challenger", "champion")
    assert clustered_difference(values, named, unit) == clustered_difference(values, arm, unit)
    with pytest.raises(StatisticsError, match="challenger"):
        clustered_difference(values, np.where(arm == 1, "b", "a"), unit)
    with pytest.raises(StatisticsError, match="one entry per row"):
        clustered_difference(values, arm[:-1], unit)
    one_arm = clustered_difference(values, np.ones_like(arm), unit)
    assert not one_arm.informative


def test_estimate_to_dict_is_json_ready() -> None:
    d = Estimate(0.01, 0.005, 100, 400, 0.6).to_dict()
    assert d["interval_95"][0] == pytest.approx(0.01 - 1.959964 * 0.005, rel=1e-5)
    assert d["lam"] == 0.6 and d["n_unlabelled"] == 400
