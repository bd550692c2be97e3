"""How long a rollout should take at the traffic the service has: ``retrainer rollout plan``.

A pure function of measured numbers (:class:`Traffic`, from the store's
:class:`~retrainer.store.traffic.TrafficMeasure`), the rollout config and the prior. It picks the
mode (``rollout.mode: auto``: a paired shadow, an A/B test when outcomes depend on predictions),
turns the traffic into pairs a day and a per-pair variance, and asks the decision rule's own
forecast (:func:`~retrainer.deployments.rollout.decision.days_to_decision`) on which day it
decides. When that is not within ``rollout.decision.max_duration`` it says so and what would
change it, with numbers: a larger traffic share, a larger margin, a longer max_duration.

Per-pair variances (accuracy on the same request, Δ = challenger - champion):

* **paired shadow**: ``d = right_chal - right_champ`` is nonzero only where the two models
  answer differently, so ``var(d) <= q``, the disagreement rate (``= q - Δ²`` for two classes).
  Every shadowed request is also a label-free pair (each model's calibrated probability of being
  right); the proxy's residual variance is *assumed* ``PROXY_RESIDUAL_SHARE * q``: disagreements
  are the uncertain rows, where a calibrated probability explains little of the outcome.
* **A/B**: a share ``s`` of ``N`` labelled requests a day goes to the challenger; the difference
  of two accuracies ``p`` has variance ``p(1-p) / (N s (1-s))``: ``N`` "pairs" of variance
  ``p(1-p) / (s(1-s))``. It assumes one request per unit (many per unit: longer).

The forecast takes the online difference to be the prior mean (what the offline result
predicts), and also reports the day "if the challenger is no better" (Δ = 0). Its headline day
is the median of :data:`FORECAST_RUNS` simulated rollouts run through the rule's own array form
(:func:`decision_day_spread`), with the 10th and 90th percentiles; ``evidence_day`` is
:func:`~retrainer.deployments.rollout.decision.days_to_decision`'s day on the expected
evidence, which comes later (a noisy estimate crosses a threshold before its mean path). Checked
against a direct simulation of the rule on simulated traffic (real PPI estimates, update,
decide): medians within a day at 200-1,000 requests a day (tests/deployments/test_rollout_plan.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from retrainer.config import RolloutConfig
from retrainer.deployments.rollout.posterior import prior_for, rule_from
from retrainer.deployments.rollout.decision import (
    CONTINUE,
    PROMOTE,
    DecisionRule,
    Prior,
    combine,
    days_to_decision,
    ppi_variance,
    prior_from_offline,
    rule_actions,
)

# The shadow's disagreement rate when no shadow has run yet and the holdout gave none: stated
# as an assumption in the plan, never passed off as measured.
DEFAULT_DISAGREEMENT = 0.10
# The champion's accuracy for an A/B test's variance when no label has been measured.
DEFAULT_ACCURACY = 0.80
# Share of a shadow pair's variance the calibrated label-free proxy leaves unexplained (module docstring).
PROXY_RESIDUAL_SHARE = 0.8
# A variance of exactly 0 (identical models) would make one pair decisive: floor it.
MIN_PAIR_VARIANCE = 1e-4
# Simulated rollouts behind a forecast (seeded: the same inputs give the same plan). The median
# day's own error is ~1/(2 f sqrt(runs)) days, a fraction of a day at 2,000.
FORECAST_RUNS = 2000
# How far the "what would change it" searches look.
LONGEST_FORECAST_DAYS = 365
LARGEST_MARGIN = 0.10
MARGIN_STEP = 0.0025


@dataclass(frozen=True)
class Traffic:
    """The measured inputs; each ``*_source`` says where a figure came from (measured or assumed)."""

    requests_per_day: float
    label_rate: float
    label_delay_days: float
    disagreement: float
    disagreement_source: str
    champion_accuracy: float
    accuracy_source: str
    measured_over_days: float = 0.0


@dataclass(frozen=True)
class Alternative:
    """One change that would bring the decision within max_duration (``days`` None: even that does not)."""

    change: str
    settings: dict[str, Any]  # config key -> value that makes the change
    days: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RolloutPlan:
    mode: str
    mode_reason: str
    traffic: Traffic
    share: float
    share_key: str
    labelled_per_day: float
    unlabelled_per_day: float
    pair_variance: float
    proxy_residual_variance: float | None
    prior: Prior
    rule: DecisionRule
    expected_days: int | None  # the median simulated decision day
    spread: DaySpread | None
    evidence_day: int | None  # days_to_decision: the day the expected evidence suffices
    days_if_no_better: int | None
    max_duration_days: float
    fits: bool
    alternatives: list[Alternative] = field(default_factory=list)
    summary: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode, "mode_reason": self.mode_reason, "traffic": asdict(self.traffic),
            "share": self.share, "share_key": self.share_key,
            "labelled_pairs_per_day": self.labelled_per_day, "unlabelled_pairs_per_day": self.unlabelled_per_day,
            "pair_variance": self.pair_variance, "proxy_residual_variance": self.proxy_residual_variance,
            "prior": self.prior.to_dict(), "rule": asdict(self.rule),
            "expected_days": self.expected_days, "spread": None if self.spread is None else self.spread.to_dict(),
            "evidence_day": self.evidence_day, "days_if_no_better": self.days_if_no_better,
            "max_duration_days": self.max_duration_days, "fits": self.fits,
            "alternatives": [a.to_dict() for a in self.alternatives], "summary": self.summary,
        }


@dataclass(frozen=True)
class _Design:
    labelled_per_day: float
    unlabelled_per_day: float
    pair_variance: float
    proxy_residual_variance: float | None


def _design(mode: str, traffic: Traffic, share: float) -> _Design:
    """Pairs a day and per-pair variances of ``mode`` at traffic share ``share`` (module docstring)."""
    n = traffic.requests_per_day * share
    if mode == "ab":
        p = traffic.champion_accuracy
        var = max(p * (1 - p), MIN_PAIR_VARIANCE) / (share * (1 - share))
        return _Design(traffic.requests_per_day * traffic.label_rate, 0.0, var, None)
    q = max(traffic.disagreement, MIN_PAIR_VARIANCE)
    return _Design(n * traffic.label_rate, n, q, PROXY_RESIDUAL_SHARE * q)


def _evidence_day(design: _Design, prior: Prior, rule: DecisionRule, traffic: Traffic, max_days: int,
                  true_delta: float | None = None) -> int | None:
    """:func:`days_to_decision`: the day the rule decides on the *expected* evidence."""
    return days_to_decision(
        prior, rule, labelled_per_day=design.labelled_per_day, unlabelled_per_day=design.unlabelled_per_day,
        pair_variance=design.pair_variance, proxy_residual_variance=design.proxy_residual_variance,
        label_delay_days=traffic.label_delay_days, max_days=max_days, true_delta=true_delta,
    )


def _days(design: _Design, prior: Prior, rule: DecisionRule, traffic: Traffic, max_days: int,
          true_delta: float | None = None) -> int | None:
    """The median simulated decision day (None: half the rollouts or more would still be collecting)."""
    return decision_day_spread(design, prior, rule, traffic, max_days, true_delta=true_delta).median


@dataclass(frozen=True)
class DaySpread:
    """When simulated rollouts decided: ``median``, ``p10``, ``p90`` (None: past the horizon) and the
    shares that decided within it and that promoted."""

    median: int | None
    p10: int | None
    p90: int | None
    decided: float
    promoted: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _quantile(days: np.ndarray, q: float) -> int | None:
    v = float(np.quantile(days, q, method="inverted_cdf"))
    return None if math.isinf(v) else int(v)


def decision_day_spread(design: _Design, prior: Prior, rule: DecisionRule, traffic: Traffic, max_days: int, *,
                        true_delta: float | None = None, runs: int = FORECAST_RUNS, seed: int = 0) -> DaySpread:
    """The day the rule decides over ``runs`` simulated rollouts, run through the rule itself
    (:func:`~retrainer.deployments.rollout.decision.combine` and ``rule_actions``).

    The online estimate on day ``t`` has the variance ``V_t`` of the pairs in by then (labels
    ``label_delay_days`` late, PPI over the rest: ``ppi_variance``), and successive days share
    their data: with information ``I_t = 1/V_t``, ``I_t (est_t - Δ)`` is a Brownian motion in
    ``I`` (a running mean's error), drawn by independent increments. Noise is why this median
    comes sooner than :func:`days_to_decision`'s day on the expected evidence: an estimate
    wandering about Δ crosses a threshold before its mean path does.
    """
    centre = prior.mean if true_delta is None else true_delta
    t = np.arange(max_days + 1, dtype=np.float64)
    n = np.maximum(0.0, design.labelled_per_day * (t - traffic.label_delay_days))
    big_n = np.maximum(0.0, design.unlabelled_per_day * t - n)
    resid = design.pair_variance if design.proxy_residual_variance is None else design.proxy_residual_variance
    var = np.array([ppi_variance(a, b, design.pair_variance, resid) for a, b in zip(n, big_n)])
    info = np.maximum.accumulate(np.where(np.isfinite(var), 1.0 / var, 0.0))  # more data never means less
    rng = np.random.default_rng(seed)
    # Drawn day by day (days x runs), so a longer horizon extends the same rollouts rather than
    # drawing new ones: plans over different max_durations agree on the days they share.
    steps = rng.standard_normal((t.size, runs)).T * np.sqrt(np.diff(info, prepend=0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        est = np.where(info > 0, centre + np.cumsum(steps, axis=1) / info, np.nan)
        se = np.where(info > 0, 1.0 / np.sqrt(info), np.inf)
    mean, sd = combine(prior.mean, prior.sd, est, np.broadcast_to(se, est.shape))
    actions = rule_actions(mean, sd, rule, n_labelled=np.broadcast_to(n, est.shape))
    decided = actions != CONTINUE
    first = np.where(decided.any(axis=1), decided.argmax(axis=1), -1)
    days = np.where(first >= 0, first, np.inf).astype(np.float64)
    promoted = np.take_along_axis(actions, np.maximum(first, 0)[:, None], axis=1)[:, 0] == PROMOTE
    return DaySpread(median=_quantile(days, 0.5), p10=_quantile(days, 0.1), p90=_quantile(days, 0.9),
                     decided=float(np.mean(first >= 0)), promoted=float(np.mean(promoted & (first >= 0))))


def _alternatives(mode: str, traffic: Traffic, share: float, prior: Prior, rule: DecisionRule,
                  max_days: int) -> list[Alternative]:
    out = []
    top_share, key = (0.5, "rollout.ab.split") if mode == "ab" else (1.0, "rollout.shadow.sample")
    if share < top_share:
        days = _days(_design(mode, traffic, top_share), prior, rule, traffic, max_days)
        then = f"decides on day {days}" if days is not None else "still no decision within max_duration"
        out.append(Alternative(f"send {top_share:.0%} of traffic to the challenger instead of {share:.0%}: {then}",
                               {key: top_share}, days))
    design = _design(mode, traffic, share)
    # A wider margin alone rarely helps: the expected-loss bound still binds. Scale both together
    # (the defaults' 0.002 is a fifth of the 0.01 margin), and say so.
    margin, found = rule.margin, None
    while margin < LARGEST_MARGIN - 1e-12 and found is None:
        margin = round(margin + MARGIN_STEP, 6)
        loss = round(rule.max_expected_loss * margin / rule.margin, 6)
        wider = replace(rule, margin=margin, max_expected_loss=loss)
        days = _days(design, prior, wider, traffic, max_days)
        if days is not None:
            found = Alternative(f"accept a challenger up to {margin:g} worse, max_expected_loss {loss:g} (now "
                                f"{rule.margin:g} and {rule.max_expected_loss:g}): decides on day {days}",
                                {"rollout.decision.margin": margin, "rollout.decision.max_expected_loss": loss},
                                days)
    out.append(found or Alternative(f"no margin up to {LARGEST_MARGIN:g} (expected-loss bound scaled with it) "
                                    "decides within max_duration", {"rollout.decision.margin": LARGEST_MARGIN}, None))
    longest = _days(design, prior, rule, traffic, LONGEST_FORECAST_DAYS)
    out.append(Alternative(
        f"a longer max_duration: the rule decides on day {longest}" if longest is not None
        else f"no decision expected within {LONGEST_FORECAST_DAYS} days at this traffic",
        {"rollout.decision.max_duration": f"{longest}d" if longest is not None else f">{LONGEST_FORECAST_DAYS}d"},
        longest))
    return out


def plan_rollout(cfg: RolloutConfig, traffic: Traffic, prior: Prior) -> RolloutPlan:
    """The forecast for a rollout under ``cfg`` at ``traffic`` with ``prior`` (module docstring)."""
    mode = cfg.resolved_mode
    rule = rule_from(cfg.decision)
    max_duration = cfg.decision.max_duration.total_seconds() / 86400
    max_days = int(math.floor(max_duration + 1e-9))
    share, share_key = (cfg.ab.split, "rollout.ab.split") if mode == "ab" else (cfg.shadow.sample, "rollout.shadow.sample")
    if mode == "direct":
        return RolloutPlan(mode, cfg.mode_reason + ": promoted at once, nothing to forecast", traffic, 1.0, "",
                           0.0, 0.0, 0.0, None, prior, rule, 0, None, 0, 0, max_duration, True, [],
                           "direct: the challenger is promoted as soon as it passes the gate and its integration test")
    design = _design(mode, traffic, share)
    spread = decision_day_spread(design, prior, rule, traffic, max_days)
    days = spread.median
    no_better = _days(design, prior, rule, traffic, max_days, true_delta=0.0)
    fits = days is not None
    alternatives = [] if fits else _alternatives(mode, traffic, share, prior, rule, max_days)
    return RolloutPlan(
        mode=mode, mode_reason=cfg.mode_reason, traffic=traffic, share=share, share_key=share_key,
        labelled_per_day=design.labelled_per_day, unlabelled_per_day=design.unlabelled_per_day,
        pair_variance=design.pair_variance, proxy_residual_variance=design.proxy_residual_variance,
        prior=prior, rule=rule, expected_days=days, spread=spread,
        evidence_day=_evidence_day(design, prior, rule, traffic, max_days), days_if_no_better=no_better,
        max_duration_days=max_duration, fits=fits, alternatives=alternatives,
        summary=_summary(mode, spread, max_duration, design, prior, traffic),
    )


def _summary(mode: str, spread: DaySpread, max_duration: float, design: _Design, prior: Prior,
             traffic: Traffic) -> str:
    if mode == "shadow":
        what = "paired shadow"
        pairs = (f"{design.unlabelled_per_day:,.0f} shadowed requests a day, {design.labelled_per_day:,.0f} of them "
                 f"labelled after ~{traffic.label_delay_days:.1f}d")
    else:
        what = "A/B test"
        pairs = f"{design.labelled_per_day:,.0f} labelled requests a day over both arms, after ~{traffic.label_delay_days:.1f}d"
    if spread.median is not None:
        late = f"day {spread.p90}" if spread.p90 is not None else f"past max_duration ({1 - spread.decided:.0%} of them)"
        return (f"{what}: a decision expected on day {spread.median} of at most {max_duration:g} (half of simulated "
                f"rollouts decided by then, 10% by day {spread.p10}, 90% by {late}; {pairs})")
    return (f"{what}: no decision expected within max_duration {max_duration:g}d ({spread.decided:.0%} of simulated "
            f"rollouts decide by then; {pairs}); at max_duration the posterior mean decides (promote if > 0, now "
            f"{prior.mean:+.4f}), never a rejection for the time")


# Fewer shadow pairs than this do not measure a disagreement rate worth more than the holdout's.
MIN_SHADOW_PAIRS = 50


def traffic_from(measure: Any, *, holdout_disagreement: float | None = None,
                 any_shadow: Any | None = None) -> Traffic:
    """:class:`Traffic` from a :class:`~retrainer.store.traffic.TrafficMeasure`, each figure with its
    source: the disagreement from this challenger's shadow pairs, else any shadow's (``any_shadow``,
    a measure over every shadow version), else the holdout's, else :data:`DEFAULT_DISAGREEMENT`."""
    if measure.disagreement is not None and measure.n_shadow_pairs >= MIN_SHADOW_PAIRS:
        q, q_src = measure.disagreement, f"measured: {measure.n_shadow_pairs:,} shadow pairs of this challenger"
    elif any_shadow is not None and any_shadow.disagreement is not None and any_shadow.n_shadow_pairs >= MIN_SHADOW_PAIRS:
        q, q_src = any_shadow.disagreement, f"measured: {any_shadow.n_shadow_pairs:,} shadow pairs of earlier challengers"
    elif holdout_disagreement is not None and math.isfinite(holdout_disagreement):
        q, q_src = holdout_disagreement, "the holdout: challenger and champion on the same rows"
    else:
        q, q_src = DEFAULT_DISAGREEMENT, "assumed (no shadow pairs and no holdout comparison to measure it)"
    if measure.champion_accuracy is not None:
        acc, acc_src = measure.champion_accuracy, f"measured: {measure.n_labelled:,} labelled predictions"
    else:
        acc, acc_src = DEFAULT_ACCURACY, "assumed (no labelled prediction yet)"
    return Traffic(requests_per_day=measure.requests_per_day, label_rate=measure.label_rate,
                   label_delay_days=measure.label_delay_p50_days or 0.0, disagreement=q, disagreement_source=q_src,
                   champion_accuracy=acc, accuracy_source=acc_src, measured_over_days=measure.days)


def challenger_to_plan(store: Any, model_name: str) -> str | None:
    """The version a plan is about when none is named: the rollout in flight, else the newest
    queued one, else the newest version a retrain run registered with an offline difference."""
    in_flight = store.rollout_in_flight(model_name)
    if in_flight is not None:
        return str(in_flight.version)
    queued = store.rollouts(model_name, stages=["queued"])
    if queued:
        return str(queued[-1].version)
    return store.latest_offline_version(model_name)


def _prior(cfg: Any, store: Any, version: str | None) -> Prior:
    """The prior the rollout of ``version`` will start from (the rollout's own ``prior_for``); with no
    version yet, the neutral prior the next challenger gets when it has no offline difference."""
    if version is not None:
        return prior_for(cfg.rollout.decision, store, cfg.model.name, version)
    base = prior_from_offline(0.0, 0.0, cfg.rollout.decision.kappa, cfg.rollout.decision.tau)
    return Prior(base.mean, base.sd, f"no offline difference recorded for the next challenger: centred at 0 with sd tau {base.sd:g}")


def plan_for(cfg: Any, store: Any, *, as_of: Any, version: str | None = None,
             lookback: Any = None) -> tuple[RolloutPlan, dict[str, Any]]:
    """The plan for ``version`` (default :func:`challenger_to_plan`) from the store's measured
    traffic over ``lookback`` (default 14 days) before ``as_of``, and what it was measured on."""
    from datetime import timedelta

    lookback = lookback or timedelta(days=14)
    name = cfg.model.name
    version = version if version is not None else challenger_to_plan(store, name)
    measure = store.traffic(name, as_of=as_of, lookback=lookback, shadow_version=version)
    any_shadow = store.traffic(name, as_of=as_of, lookback=lookback) if version is not None else measure
    record = store.offline_record(name, version) if version is not None else None
    traffic = traffic_from(measure, holdout_disagreement=(record or {}).get("disagreement"), any_shadow=any_shadow)
    plan = plan_rollout(cfg.rollout, traffic, _prior(cfg, store, version))
    context = {"model": name, "version": version, "champion": store.champion(name), "as_of": as_of.isoformat(),
               "lookback_days": lookback.total_seconds() / 86400, "measured": measure.to_dict(),
               "offline": record}
    return plan, context


__all__ = ["DEFAULT_ACCURACY", "DEFAULT_DISAGREEMENT", "FORECAST_RUNS", "MIN_SHADOW_PAIRS", "PROXY_RESIDUAL_SHARE",
           "Alternative", "DaySpread", "RolloutPlan", "decision_day_spread", "Traffic", "challenger_to_plan", "plan_for", "plan_rollout",
           "traffic_from"]
