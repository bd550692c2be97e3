"""STUB (i19-advance): replaced by i19-decision's module at merge."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from scipy.stats import norm


@dataclass(frozen=True)
class Prior:
    mean: float
    sd: float
    source: str


def prior_from_offline(delta_off, se_off, kappa=0.5, tau=0.03) -> Prior:
    return Prior(kappa * delta_off, math.sqrt(tau**2 + se_off**2), "offline")


def fit_prior(history, delta_off, se_off, default_kappa, default_tau, min_rollouts=5) -> Prior:
    return prior_from_offline(delta_off, se_off, default_kappa, default_tau)


@dataclass(frozen=True)
class Posterior:
    mean: float
    sd: float

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        z = norm.ppf(0.5 + level / 2)
        return (self.mean - z * self.sd, self.mean + z * self.sd)

    def p_below(self, x: float) -> float:
        return float(norm.cdf((x - self.mean) / self.sd))

    def expected_loss(self) -> float:
        z = self.mean / self.sd
        return float(self.sd * norm.pdf(z) - self.mean * norm.cdf(-z))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "sd": self.sd, "interval": list(self.interval()), "expected_loss": self.expected_loss()}


def update(prior: Prior, estimate) -> Posterior:
    if estimate is None or not math.isfinite(estimate.se) or estimate.se <= 0:
        return Posterior(prior.mean, prior.sd)
    w0, w1 = 1 / prior.sd**2, 1 / estimate.se**2
    return Posterior((w0 * prior.mean + w1 * estimate.mean) / (w0 + w1), math.sqrt(1 / (w0 + w1)))


@dataclass(frozen=True)
class DecisionRule:
    margin: float = 0.01
    p_worse_max: float = 0.05
    max_expected_loss: float = 0.002
    p_harm_reject: float = 0.95


@dataclass(frozen=True)
class Verdict:
    action: Literal["promote", "reject", "continue"]
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


def decide(posterior: Posterior, rule: DecisionRule, *, guardrail_failure=None, at_max_duration=False,
           n_labelled=0, n_unlabelled=0) -> Verdict:
    p_worse = posterior.p_below(-rule.margin)
    p_harm = posterior.p_below(0.0)
    el = posterior.expected_loss()
    ev = {"posterior": posterior.to_dict(), "p_worse": p_worse, "p_harm": p_harm, "expected_loss": el,
          "n_labelled": n_labelled, "n_unlabelled": n_unlabelled}
    if guardrail_failure:
        return Verdict("reject", f"guardrail failed: {guardrail_failure}", ev)
    if p_harm >= rule.p_harm_reject:
        return Verdict("reject", f"P(delta < 0) = {p_harm:.3f}", ev)
    if p_worse <= rule.p_worse_max and el <= rule.max_expected_loss:
        return Verdict("promote", f"P(delta < -margin) = {p_worse:.3f}", ev)
    if at_max_duration:
        if posterior.mean > 0:
            return Verdict("promote", f"max duration: posterior mean {posterior.mean:+.4f} > 0", ev)
        return Verdict("reject", f"max duration: posterior mean {posterior.mean:+.4f} <= 0", ev)
    return Verdict("continue", f"P(delta < -margin) = {p_worse:.3f}", ev)
