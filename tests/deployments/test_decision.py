"""The rollout decision rule: prior, conjugate posterior, expected loss, every branch of decide, the forecast."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm

from retrainer.deployments.rollout.decision import (
    CONTINUE,
    DEFAULT_MAX_DURATION_DAYS,
    MIN_TAU,
    PROMOTE,
    REJECT,
    DecisionRule,
    Posterior,
    Prior,
    combine,
    days_to_decision,
    decide,
    fit_prior,
    ppi_variance,
    prior_from_offline,
    rule_actions,
    update,
)
from retrainer.errors import StatisticsError
from retrainer.stats.paired import Estimate

RULE = DecisionRule()
ENOUGH = 10_000  # labelled pairs: past min_labelled


# -- prior -----------------------------------------------------------------------------------------


def test_prior_from_offline_is_kappa_delta_with_tau_and_se_added_in_quadrature() -> None:
    p = prior_from_offline(0.08, 0.01, kappa=0.5, tau=0.03)
    assert p.mean == pytest.approx(0.04)
    assert p.sd == pytest.approx(math.sqrt(0.03**2 + 0.01**2))
    assert "Δ_off +0.0800" in p.source and "kappa 0.5" in p.source
    with pytest.raises(StatisticsError, match="positive spread"):
        prior_from_offline(0.1, 0.0, tau=0.0)
    with pytest.raises(StatisticsError, match="finite"):
        prior_from_offline(math.nan, 0.01)


def test_fit_prior_recovers_kappa_and_tau_from_simulated_history() -> None:
    rng = np.random.default_rng(0)
    off = rng.normal(0.04, 0.03, 400)
    on = 0.7 * off + rng.normal(0, 0.02, 400)
    p = fit_prior(list(zip(off, on, strict=True)), delta_off=0.05, se_off=0.0)
    kappa = p.mean / 0.05
    assert kappa == pytest.approx(0.7, abs=0.05)
    assert p.sd == pytest.approx(0.02, abs=0.002)
    assert "fitted on 400" in p.source


def test_fit_prior_keeps_the_defaults_below_min_rollouts_and_floors_tau() -> None:
    few = fit_prior([(0.05, 0.02)] * 4, delta_off=0.06, se_off=0.01)
    assert few.mean == pytest.approx(0.03) and few.sd == pytest.approx(math.sqrt(0.03**2 + 0.01**2))
    assert "defaults: 4 finished" in few.source
    exact = fit_prior([(x, 0.5 * x) for x in (0.01, 0.02, 0.03, 0.04, 0.05)], delta_off=0.1, se_off=0.0)
    assert exact.mean == pytest.approx(0.05) and exact.sd == pytest.approx(MIN_TAU)
    negative = fit_prior([(x, -0.5 * x) for x in (0.01, 0.02, 0.03, 0.04, 0.05)], delta_off=0.1, se_off=0.0)
    assert negative.mean == pytest.approx(-0.05)  # a model whose offline gains go the wrong way online


# -- posterior -------------------------------------------------------------------------------------


def test_update_is_the_textbook_conjugate_normal() -> None:
    prior = Prior(0.02, 0.03, "test")
    est = Estimate(mean=-0.01, se=0.015, n=800)
    post = update(prior, est)
    # Gelman et al., BDA 2.5: posterior precision = sum of precisions, mean = precision-weighted.
    prec = 1 / 0.03**2 + 1 / 0.015**2
    assert post.sd == pytest.approx(prec**-0.5)
    assert post.mean == pytest.approx((0.02 / 0.03**2 - 0.01 / 0.015**2) / prec)


def test_update_without_evidence_is_the_prior() -> None:
    prior = Prior(0.02, 0.03, "test")
    assert update(prior, None) == Posterior(0.02, 0.03)
    assert update(prior, Estimate(0.5, math.inf, 1)) == Posterior(0.02, 0.03)
    mean, sd = combine([0.02, 0.02], [0.03, 0.03], [0.1, 0.1], [math.inf, 0.0])
    assert (mean[0], sd[0]) == pytest.approx((0.02, 0.03))
    assert mean[1] == pytest.approx(0.1) and sd[1] < 1e-9  # an exact figure overrides the prior


@pytest.mark.parametrize(("mean", "sd"), [(0.0, 0.01), (0.02, 0.015), (-0.03, 0.02), (0.05, 0.001)])
def test_expected_loss_matches_numeric_integration(mean: float, sd: float) -> None:
    post = Posterior(mean, sd)
    numeric, _ = integrate.quad(lambda x: max(0.0, -x) * norm.pdf(x, mean, sd), mean - 12 * sd, mean + 12 * sd,
                                points=[0.0] if abs(mean) < 12 * sd else None, limit=200)
    assert post.expected_loss() == pytest.approx(numeric, rel=1e-6, abs=1e-12)


def test_posterior_probabilities_and_interval() -> None:
    post = Posterior(0.01, 0.02)
    assert post.p_below(-0.01) == pytest.approx(norm.cdf(-1.0))
    assert post.interval(0.9) == pytest.approx((0.01 - 1.644854 * 0.02, 0.01 + 1.644854 * 0.02), rel=1e-6)
    d = post.to_dict(margin=0.01)
    assert d["p_worse_than_margin"] == pytest.approx(norm.cdf(-1.0)) and d["p_below_zero"] == pytest.approx(norm.cdf(-0.5))


# -- decide: every branch ------------------------------------------------------------------------------


def test_promote_when_not_worse_by_the_margin_and_the_expected_loss_is_small() -> None:
    v = decide(Posterior(0.03, 0.008), RULE, n_labelled=ENOUGH, n_unlabelled=40_000)
    assert v.action == "promote"
    assert v.evidence["p_worse_than_margin"] <= 0.05 and v.evidence["expected_loss"] <= RULE.max_expected_loss
    assert v.evidence["n_labelled"] == ENOUGH and v.evidence["n_unlabelled"] == 40_000
    assert "promote: P(Δ < -0.01)" in v.reason and "10,000 labelled" in v.reason


def test_a_small_p_worse_is_not_enough_when_the_expected_loss_is_too_big() -> None:
    post = Posterior(0.01, 0.011)  # P(Δ < -0.01) = 0.035, but E[max(0, -Δ)] ~ 0.0013
    assert post.p_below(-0.01) <= 0.05 and post.expected_loss() > RULE.max_expected_loss
    v = decide(post, RULE, n_labelled=ENOUGH)
    assert v.action == "continue" and "expected loss" in v.reason


def test_reject_when_probably_worse() -> None:
    v = decide(Posterior(-0.02, 0.01), RULE, n_labelled=ENOUGH)
    assert v.action == "reject" and v.evidence["p_below_zero"] >= 0.95 and "worse" in v.reason


def test_reject_on_a_guardrail_whatever_the_posterior() -> None:
    v = decide(Posterior(0.2, 0.001), RULE, guardrail_failure="agreement 31% below the 50% floor")
    assert v.action == "reject" and "agreement 31%" in v.reason
    assert v.evidence["guardrail_failure"] == "agreement 31% below the 50% floor"


def test_continue_while_uncertain_saying_what_it_waits_for() -> None:
    v = decide(Posterior(0.005, 0.02), RULE, n_labelled=ENOUGH)
    assert v.action == "continue"
    assert "P(Δ < -0.01)" in v.reason and "expected loss" in v.reason


def test_no_verdict_on_the_prior_alone_before_min_labelled() -> None:
    strong = Posterior(0.1, 0.01)  # would promote at once
    v = decide(strong, RULE, n_labelled=120)
    assert v.action == "continue" and "120 of the 500 labelled pairs" in v.reason
    assert decide(Posterior(-0.1, 0.01), RULE, n_labelled=120).action == "continue"
    assert decide(strong, RULE, n_labelled=500).action == "promote"


@pytest.mark.parametrize(("mean", "action"), [(0.004, "promote"), (-0.004, "reject"), (0.0, "reject")])
def test_at_max_duration_the_posterior_mean_decides(mean: float, action: str) -> None:
    v = decide(Posterior(mean, 0.02), RULE, at_max_duration=True, n_labelled=80)
    assert v.action == action
    assert "at max duration on the posterior mean" in v.reason
    assert "time ran out" not in v.reason
    assert v.evidence["decided_by"] == "posterior_mean_at_max_duration"


def test_at_max_duration_a_decisive_posterior_keeps_its_own_reason() -> None:
    v = decide(Posterior(-0.05, 0.01), RULE, at_max_duration=True, n_labelled=ENOUGH)
    assert v.action == "reject" and "the challenger is worse" in v.reason and "decided_by" not in v.evidence


def test_rule_actions_is_decide_on_arrays() -> None:
    rng = np.random.default_rng(1)
    means, sds = rng.normal(0, 0.03, 300), rng.uniform(0.002, 0.04, 300)
    n = rng.integers(0, 1500, 300)
    timeout = rng.random(300) < 0.3
    codes = rule_actions(means, sds, RULE, at_max_duration=timeout, n_labelled=n)
    names = {PROMOTE: "promote", REJECT: "reject", CONTINUE: "continue"}
    for m, s, k, t, c in zip(means, sds, n, timeout, codes, strict=True):
        assert decide(Posterior(m, s), RULE, at_max_duration=bool(t), n_labelled=int(k)).action == names[int(c)]


def test_decision_rule_validates() -> None:
    with pytest.raises(StatisticsError, match="margin"):
        DecisionRule(margin=-0.1)
    with pytest.raises(StatisticsError, match="p_worse_max"):
        DecisionRule(p_worse_max=1.0)
    with pytest.raises(StatisticsError, match="max_expected_loss"):
        DecisionRule(max_expected_loss=0.0)


# -- the forecast ------------------------------------------------------------------------------------


def test_ppi_variance_forecast_limits() -> None:
    assert math.isinf(ppi_variance(0, 1000, 0.12, 0.08))
    assert ppi_variance(500, 0, 0.12, 0.08) == pytest.approx(0.12 / 500)
    with_proxy = ppi_variance(500, 5000, 0.12, 0.08)
    assert with_proxy < 0.12 / 500
    # Many label-free pairs: the labelled part only has to estimate the proxy's residual.
    assert ppi_variance(500, 10**9, 0.12, 0.08) == pytest.approx(0.08 / 500, rel=1e-3)


def test_days_to_decision_follows_traffic_and_delay() -> None:
    prior = prior_from_offline(0.06, 0.008)
    kw = {"pair_variance": 0.12, "proxy_residual_variance": 0.08}
    fast = days_to_decision(prior, RULE, labelled_per_day=5000, unlabelled_per_day=5000, label_delay_days=1, **kw)
    slow = days_to_decision(prior, RULE, labelled_per_day=200, unlabelled_per_day=200, label_delay_days=1, **kw)
    late = days_to_decision(prior, RULE, labelled_per_day=200, unlabelled_per_day=200, label_delay_days=7, **kw)
    assert fast is not None and slow is not None and late is not None
    assert fast <= slow < late
    assert late - slow == 6  # the same labelled count, six days later
    # min_labelled: 200 a day with a 1-day delay needs day 1 + 500/200 -> day 4 at the earliest.
    assert slow >= 4


def test_days_to_decision_none_when_the_rule_would_not_decide_before_max_duration() -> None:
    prior = prior_from_offline(0.0, 0.01)
    assert days_to_decision(prior, RULE, labelled_per_day=20, unlabelled_per_day=20, pair_variance=0.12,
                            label_delay_days=7, max_days=DEFAULT_MAX_DURATION_DAYS) is None


def test_days_to_decision_matches_deciding_day_by_day() -> None:
    prior = prior_from_offline(0.04, 0.01)
    day = days_to_decision(prior, RULE, labelled_per_day=300, unlabelled_per_day=300, pair_variance=0.12,
                           label_delay_days=2)
    assert day is not None
    for t in range(day + 1):
        n = max(0, 300 * (t - 2))
        est = Estimate(prior.mean, math.sqrt(0.12 / n), n) if n >= 2 else None
        action = decide(update(prior, est), RULE, n_labelled=n).action
        assert (action != "continue") == (t == day)


def test_docstring_example() -> None:
    import doctest

    import retrainer.deployments.rollout.decision as module

    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(("delta", "per_day", "delay"), [(0.05, 200, 1), (0.03, 1000, 7), (0.08, 50, 3), (0.015, 500, 1),
                                                     (0.02, 100, 2), (-0.01, 300, 1)])
def test_days_to_decision_is_the_median_day_of_simulated_rollouts(delta: float, per_day: int, delay: int) -> None:
    """Simulated traffic: 2,000 rollouts whose labelled pairs arrive per_day a day, delay days late;
    the forecast day is within a day of the median day the rule decided (the first three are set
    by min_labelled, the others by the posterior)."""
    rng = np.random.default_rng(int(per_day * 10 + delay))
    d = 0.12
    prior = prior_from_offline(delta / 0.5, 0.008)  # kappa 0.5: the prior mean is the truth
    forecast = days_to_decision(prior, RULE, labelled_per_day=per_day, unlabelled_per_day=per_day,
                                pair_variance=d - delta**2, label_delay_days=delay)
    assert forecast is not None
    runs, days = 2000, DEFAULT_MAX_DURATION_DAYS
    disagree = rng.binomial(per_day, d, (runs, days))
    plus = rng.binomial(disagree, (1 + delta / d) / 2)
    s, k = np.cumsum(2 * plus - disagree, axis=1), np.cumsum(disagree, axis=1)
    decided = np.full(runs, days + 1)
    for t in range(days + 1):
        lab = t - delay
        if lab < 1:
            continue
        n = per_day * lab
        mean = s[:, lab - 1] / n
        se = np.sqrt(np.maximum(k[:, lab - 1] / n - mean**2, 1e-12) * n / (n - 1) / n)
        m, sd = combine(prior.mean, prior.sd, mean, se)
        act = rule_actions(m, sd, RULE, at_max_duration=t == days, n_labelled=n)
        decided = np.where((decided > days) & (act != CONTINUE), t, decided)
    median = float(np.median(decided))
    if -RULE.margin <= delta <= 0:
        # Between the promote and reject regions the expected path decides late; chance
        # crossings of either boundary come earlier: the forecast is an upper estimate there.
        assert median <= forecast
    else:
        assert abs(median - forecast) <= 1
