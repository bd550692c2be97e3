"""The one rollout decision rule (docs/rollout.md): a normal posterior for Δ, three actions.

Δ is challenger - champion on the gate metric (accuracy on paired rows). The prior comes from the
offline holdout, ``N(kappa * Δ_off, tau^2 + se_off^2)``: offline gains transfer to production
only partly (``kappa``) and with a spread of their own (``tau``); once a model has finished
enough rollouts both are fitted from its own history (:func:`fit_prior`). The online evidence is
one :class:`~retrainer.stats.paired.Estimate` (paired shadow labels combined with label-free
pairs by PPI, or a clustered A/B difference) and the posterior is the conjugate normal-normal
update::

    precision = 1/sd_prior^2 + 1/se^2
    mean      = (mean_prior/sd_prior^2 + estimate/se^2) / precision

:func:`decide` then says, in this order:

* **reject** when a guardrail failed (serving errors, latency, a broken model);
* **continue** while fewer than ``min_labelled`` labelled pairs are in: the offline result
  alone already passed the gate, and a prior that transfers badly (offline better, online worse)
  must not decide a rollout on its own;
* **reject** when ``P(Δ < 0) >= p_harm_reject``: the challenger is worse;
* **promote** when ``P(Δ < -margin) <= p_worse_max`` (not worse by more than the margin) *and* the
  expected loss ``E[max(0, -Δ)] <= max_expected_loss`` (what promoting costs if we are wrong,
  in accuracy points);
* **continue** otherwise; at the rollout's ``max_duration`` the posterior mean decides (promote
  when > 0, else reject, saying so), whatever the count: a rollout is never rejected *because*
  time ran out.

The defaults (``margin`` 0.01, ``max_expected_loss`` 0.0002, ``min_labelled`` 500, ``kappa``
0.5, ``tau`` 0.03, 42 days) were chosen with bench/rollout_decisions.py; docs/rollout.md has
the figures.

Pure: no store, no clock; :func:`days_to_decision` forecasts the day the rule decides for
``retrainer rollout plan``.

>>> post = update(prior_from_offline(0.04, 0.01), None)
>>> round(post.mean, 3), round(post.sd, 4)
(0.02, 0.0316)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import norm

from retrainer.errors import StatisticsError
from retrainer.stats.paired import Estimate

Action = Literal["promote", "reject", "continue"]
# Codes of rule_actions (arrays of verdicts in simulations).
PROMOTE, CONTINUE, REJECT = 1, 0, -1

DEFAULT_KAPPA = 0.5
DEFAULT_TAU = 0.03
# Fitted transfer spreads below this are not believed: a handful of past rollouts with nearly
# identical offline and online gains says little about the next one.
MIN_TAU = 0.01
MIN_ROLLOUTS_FOR_FIT = 5
# The longest a rollout should run before the posterior mean decides: at 50 requests a day and a
# week's label delay, 42 days give ~1,750 labelled pairs (se ~0.008), enough to tell +0.02 from
# -0.02; at 200 a day and more most rollouts decide within two weeks (bench/rollout_decisions.py).
DEFAULT_MAX_DURATION_DAYS = 42


@dataclass(frozen=True)
class Prior:
    """Belief about Δ before any online evidence: ``N(mean, sd^2)`` and where it came from."""

    mean: float
    sd: float
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "sd": self.sd, "source": self.source}


def prior_from_offline(delta_off: float, se_off: float, kappa: float = DEFAULT_KAPPA, tau: float = DEFAULT_TAU) -> Prior:
    """``N(kappa * Δ_off, tau^2 + se_off^2)`` from the paired holdout difference and its standard error."""
    if not (math.isfinite(delta_off) and math.isfinite(se_off)) or se_off < 0:
        raise StatisticsError(f"the offline difference needs a finite value and standard error (got {delta_off}, {se_off})")
    if tau < 0:
        raise StatisticsError(f"tau must be >= 0, got {tau}")
    sd = math.sqrt(tau * tau + se_off * se_off)
    if sd <= 0:
        raise StatisticsError("a prior needs a positive spread: set tau > 0 or give the offline standard error")
    return Prior(
        mean=kappa * delta_off, sd=sd,
        source=f"offline holdout: Δ_off {delta_off:+.4f} ± {se_off:.4f}, kappa {kappa:g}, tau {tau:g}",
    )


def fit_prior(
    history: Sequence[tuple[float, float]],
    delta_off: float,
    se_off: float,
    default_kappa: float = DEFAULT_KAPPA,
    default_tau: float = DEFAULT_TAU,
    min_rollouts: int = MIN_ROLLOUTS_FOR_FIT,
) -> Prior:
    """The prior from this model's own finished rollouts once it has ``min_rollouts`` of them.

    ``history``: ``(offline Δ, online Δ)`` per finished rollout. ``kappa`` is the least-squares
    slope through the origin, ``sum(off * on) / sum(off^2)``; ``tau`` the residual standard
    deviation ``sqrt(sum(r^2) / (k - 1))`` (it includes the online estimates' own noise, which errs
    on the wide side), floored at ``MIN_TAU``. Fewer rollouts (or all-zero offline differences):
    the defaults.
    """
    pairs = np.array([(float(o), float(v)) for o, v in history if math.isfinite(o) and math.isfinite(v)], dtype=float)
    if pairs.shape[0] < max(min_rollouts, 2) or not np.any(pairs[:, 0] != 0):
        base = prior_from_offline(delta_off, se_off, default_kappa, default_tau)
        have = pairs.shape[0]
        return Prior(base.mean, base.sd, base.source + f" (defaults: {have} finished rollout(s), fit needs {min_rollouts})")
    off, on = pairs[:, 0], pairs[:, 1]
    kappa = float(off @ on / (off @ off))
    resid = on - kappa * off
    tau = max(MIN_TAU, float(math.sqrt(resid @ resid / (pairs.shape[0] - 1))))
    base = prior_from_offline(delta_off, se_off, kappa, tau)
    return Prior(base.mean, base.sd, base.source + f" (fitted on {pairs.shape[0]} finished rollouts)")


@dataclass(frozen=True)
class Posterior:
    """``N(mean, sd^2)`` belief about Δ = challenger - champion."""

    mean: float
    sd: float

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        z = float(norm.ppf(0.5 + level / 2))
        return (self.mean - z * self.sd, self.mean + z * self.sd)

    def p_below(self, x: float) -> float:
        """``P(Δ < x)``."""
        return float(norm.cdf((x - self.mean) / self.sd))

    def expected_loss(self) -> float:
        """``E[max(0, -Δ)]`` in closed form: ``sd * phi(mean/sd) - mean * Phi(-mean/sd)``."""
        z = self.mean / self.sd
        return float(self.sd * norm.pdf(z) - self.mean * norm.cdf(-z))

    def to_dict(self, margin: float | None = None) -> dict[str, Any]:
        lo, hi = self.interval()
        out: dict[str, Any] = {"mean": self.mean, "sd": self.sd, "interval_95": [lo, hi],
                               "p_below_zero": self.p_below(0.0), "expected_loss": self.expected_loss()}
        if margin is not None:
            out["p_worse_than_margin"] = self.p_below(-margin)
        return out


def update(prior: Prior, estimate: Estimate | None) -> Posterior:
    """The conjugate normal-normal update; no estimate (or ``se = inf``) leaves the prior."""
    if estimate is None or not estimate.informative:
        return Posterior(prior.mean, prior.sd)
    mean, sd = combine(prior.mean, prior.sd, estimate.mean, estimate.se)
    return Posterior(float(mean), float(sd))


def combine(prior_mean: ArrayLike, prior_sd: ArrayLike, est_mean: ArrayLike, est_se: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """:func:`update` on arrays (a simulation's many runs at once): ``(mean, sd)`` of the posterior.

    ``est_se = inf`` leaves the prior; ``est_se = 0`` is an exact figure and overrides it.
    """
    m0, s0 = np.asarray(prior_mean, dtype=np.float64), np.asarray(prior_sd, dtype=np.float64)
    m1, s1 = np.asarray(est_mean, dtype=np.float64), np.asarray(est_se, dtype=np.float64)
    w0 = 1.0 / s0**2
    with np.errstate(divide="ignore", invalid="ignore"):
        w1 = np.where(np.isfinite(s1) & np.isfinite(m1), 1.0 / s1**2, 0.0)
        mean = np.where(np.isinf(w1), m1, (w0 * m0 + np.where(w1 > 0, w1 * m1, 0.0)) / (w0 + w1))
        sd = np.where(np.isinf(w1), 1e-12, np.sqrt(1.0 / (w0 + w1)))
    return mean, sd


@dataclass(frozen=True)
class DecisionRule:
    """Thresholds of :func:`decide` (docs/rollout.md says why these defaults).

    ``margin``: how much worse (accuracy points) still counts as "not worse" for promotion.
    ``p_worse_max``: promote only if ``P(Δ < -margin)`` is at most this.
    ``max_expected_loss``: and if ``E[max(0, -Δ)]`` is at most this (accuracy points).
    ``p_harm_reject``: reject once ``P(Δ < 0)`` reaches this.
    ``min_labelled``: labelled pairs needed before the posterior may promote or reject (the
    offline result alone already passed the gate; a rollout exists to check it online). Until
    then it keeps collecting; at max duration the posterior mean decides whatever the count.
    """

    margin: float = 0.01
    p_worse_max: float = 0.05
    max_expected_loss: float = 0.0002
    p_harm_reject: float = 0.95
    min_labelled: int = 500

    def __post_init__(self) -> None:
        if not 0 <= self.margin < 1:
            raise StatisticsError(f"margin must be in [0, 1), got {self.margin}")
        for name in ("p_worse_max", "p_harm_reject"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise StatisticsError(f"{name} must be in (0, 1), got {v}")
        if self.max_expected_loss <= 0:
            raise StatisticsError(f"max_expected_loss must be > 0, got {self.max_expected_loss}")
        if self.min_labelled < 0:
            raise StatisticsError(f"min_labelled must be >= 0, got {self.min_labelled}")


@dataclass(frozen=True)
class Verdict:
    """What to do now, one human sentence why, and the figures behind it (JSON-ready)."""

    action: Action
    reason: str
    evidence: dict[str, Any]


def _evidence(posterior: Posterior, rule: DecisionRule, n_labelled: int, n_unlabelled: int) -> dict[str, Any]:
    lo, hi = posterior.interval()
    return {
        "posterior_mean": posterior.mean,
        "posterior_sd": posterior.sd,
        "interval_95": [lo, hi],
        "p_worse_than_margin": posterior.p_below(-rule.margin),
        "p_below_zero": posterior.p_below(0.0),
        "expected_loss": posterior.expected_loss(),
        "n_labelled": int(n_labelled),
        "n_unlabelled": int(n_unlabelled),
        "rule": {"margin": rule.margin, "p_worse_max": rule.p_worse_max,
                 "max_expected_loss": rule.max_expected_loss, "p_harm_reject": rule.p_harm_reject,
                 "min_labelled": rule.min_labelled},
    }


def decide(
    posterior: Posterior,
    rule: DecisionRule,
    *,
    guardrail_failure: str | None = None,
    at_max_duration: bool = False,
    n_labelled: int = 0,
    n_unlabelled: int = 0,
) -> Verdict:
    """Promote, reject or continue (module docstring: the rule and its order)."""
    ev = _evidence(posterior, rule, n_labelled, n_unlabelled)
    p_worse, p_harm, loss = ev["p_worse_than_margin"], ev["p_below_zero"], ev["expected_loss"]
    lo, hi = ev["interval_95"]
    figures = (f"posterior Δ {posterior.mean:+.4f} (95% {lo:+.4f} to {hi:+.4f}) from {n_labelled:,} labelled "
               f"and {n_unlabelled:,} label-free pairs")
    ev["at_max_duration"] = bool(at_max_duration)
    if guardrail_failure:
        ev["guardrail_failure"] = guardrail_failure
        return Verdict("reject", f"reject: guardrail failed ({guardrail_failure}); {figures}", ev)
    code = int(rule_actions(posterior.mean, posterior.sd, rule, at_max_duration=at_max_duration, n_labelled=n_labelled))
    if at_max_duration and not _decisive(posterior, rule, n_labelled):
        ev["decided_by"] = "posterior_mean_at_max_duration"
        if code == PROMOTE:
            return Verdict("promote", f"promote at max duration on the posterior mean: Δ more likely up than down "
                           f"(P(Δ < 0) = {p_harm:.3f}) though not yet sure; {figures}", ev)
        return Verdict("reject", f"reject at max duration on the posterior mean: Δ {posterior.mean:+.4f} <= 0 "
                       f"(P(Δ < 0) = {p_harm:.3f}), the challenger is not expected to be better; {figures}", ev)
    if code == REJECT:
        return Verdict("reject", f"reject: the challenger is worse, P(Δ < 0) = {p_harm:.3f} >= {rule.p_harm_reject}; "
                       f"{figures}", ev)
    if code == PROMOTE:
        return Verdict("promote", f"promote: P(Δ < -{rule.margin:g}) = {p_worse:.3f} <= {rule.p_worse_max} and expected "
                       f"loss {loss:.4f} <= {rule.max_expected_loss:g}; {figures}", ev)
    wants = []
    if n_labelled < rule.min_labelled:
        wants.append(f"{n_labelled:,} of the {rule.min_labelled:,} labelled pairs needed before a verdict")
    if p_worse > rule.p_worse_max:
        wants.append(f"P(Δ < -{rule.margin:g}) = {p_worse:.3f} > {rule.p_worse_max}")
    if loss > rule.max_expected_loss:
        wants.append(f"expected loss {loss:.4f} > {rule.max_expected_loss:g}")
    return Verdict("continue", f"keep collecting: {' and '.join(wants) or 'no verdict yet'}, P(Δ < 0) = "
                   f"{p_harm:.3f}; {figures}", ev)


def _decisive(posterior: Posterior, rule: DecisionRule, n_labelled: int) -> bool:
    return int(rule_actions(posterior.mean, posterior.sd, rule, n_labelled=n_labelled)) != CONTINUE


def rule_actions(
    mean: ArrayLike, sd: ArrayLike, rule: DecisionRule, *, at_max_duration: bool | ArrayLike = False,
    n_labelled: ArrayLike | None = None,
) -> np.ndarray:
    """The rule on arrays of posteriors: ``PROMOTE`` (1), ``REJECT`` (-1) or ``CONTINUE`` (0) each.

    :func:`decide` calls this for its one posterior (and adds the guardrail and the reason), so a
    simulation over many runs at once uses exactly the rule the rollout uses.
    """
    mean = np.asarray(mean, dtype=np.float64)
    sd = np.asarray(sd, dtype=np.float64)
    p_harm = norm.cdf(-mean / sd)
    p_worse = norm.cdf((-rule.margin - mean) / sd)
    z = mean / sd
    loss = sd * norm.pdf(z) - mean * norm.cdf(-z)
    out = np.where(p_harm >= rule.p_harm_reject, REJECT,
                   np.where((p_worse <= rule.p_worse_max) & (loss <= rule.max_expected_loss), PROMOTE, CONTINUE))
    if rule.min_labelled > 0:
        enough = np.asarray(0 if n_labelled is None else n_labelled) >= rule.min_labelled
        out = np.where(enough, out, CONTINUE)
    timeout = np.asarray(at_max_duration, dtype=bool)
    return np.where(timeout & (out == CONTINUE), np.where(mean > 0, PROMOTE, REJECT), out)


def ppi_variance(n: float, big_n: float, pair_variance: float, proxy_residual_variance: float) -> float:
    """Forecast variance of the PPI++ estimate with ``n`` labelled and ``big_n`` label-free pairs.

    Assumes a calibrated proxy ``f`` (``cov(Y, f) = var(f)``), so ``var(f) = var(Y) - var(Y - f)``,
    and the power-tuned weight ``lam = N / (N + n)``; ``n = 0`` gives ``inf``.
    """
    if n <= 0:
        return math.inf
    var_y = pair_variance
    var_f = max(0.0, pair_variance - proxy_residual_variance)
    if big_n <= 0 or var_f == 0:
        return var_y / n
    lam = big_n / (big_n + n)
    return lam * lam * var_f / big_n + (var_y - 2 * lam * var_f + lam * lam * var_f) / n


def days_to_decision(
    prior: Prior,
    rule: DecisionRule,
    *,
    labelled_per_day: float,
    unlabelled_per_day: float,
    pair_variance: float,
    proxy_residual_variance: float | None = None,
    label_delay_days: float = 0.0,
    max_days: int = DEFAULT_MAX_DURATION_DAYS,
    true_delta: float | None = None,
) -> int | None:
    """The first whole day on which :func:`decide` would promote or reject, or None within ``max_days``.

    Deterministic forecast: on day ``t`` the labelled pairs are ``labelled_per_day * (t - delay)``
    (labels take ``label_delay_days`` to mature), the label-free pairs are the requests not
    labelled yet, ``unlabelled_per_day * t - labelled``; the online estimate is centred at
    ``true_delta`` (default: the prior mean) with the PPI variance of :func:`ppi_variance`
    (``proxy_residual_variance`` None: no proxy, labelled pairs only). Day 0 is the prior alone.
    The timeout is not forecast: None means "decided by the posterior mean at max duration".
    The day is the median rollout's when Δ is clearly on one side; when it lies between the
    promote and reject regions (``-margin <= Δ <= 0``) chance crossings make real rollouts
    decide earlier, and the forecast is an upper estimate (tests/deployments/test_decision.py).
    """
    if pair_variance <= 0:
        raise StatisticsError(f"pair_variance must be > 0, got {pair_variance}")
    centre = prior.mean if true_delta is None else true_delta
    for day in range(0, max_days + 1):
        n = max(0.0, labelled_per_day * (day - label_delay_days))
        big_n = max(0.0, unlabelled_per_day * day - n)
        resid = pair_variance if proxy_residual_variance is None else proxy_residual_variance
        var = ppi_variance(n, big_n if proxy_residual_variance is not None else 0.0, pair_variance, resid)
        est = Estimate(mean=centre, se=math.sqrt(var), n=int(n), n_unlabelled=int(big_n)) if math.isfinite(var) else None
        verdict = decide(update(prior, est), rule, n_labelled=int(n), n_unlabelled=int(big_n))
        if verdict.action != "continue":
            return day
    return None


__all__ = [
    "DEFAULT_KAPPA",
    "DEFAULT_MAX_DURATION_DAYS",
    "DEFAULT_TAU",
    "MIN_ROLLOUTS_FOR_FIT",
    "MIN_TAU",
    "CONTINUE",
    "PROMOTE",
    "REJECT",
    "Action",
    "DecisionRule",
    "Posterior",
    "Prior",
    "Verdict",
    "days_to_decision",
    "combine",
    "decide",
    "fit_prior",
    "ppi_variance",
    "prior_from_offline",
    "rule_actions",
    "update",
]
