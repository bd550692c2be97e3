"""The one decision rule, wired to the store: the prior from the offline holdout, the online
estimate, the verdict (docs/rollout.md). Shadow and A/B both go through :func:`judge`.

* **prior** — N(kappa x delta_off, tau^2 + se_off^2) from the version's paired holdout difference
  (:func:`~retrainer.deployments.rollout.decision.prior_from_offline`); once the model has
  enough finished rollouts, kappa and tau are fitted from its own history of offline vs
  online differences (:func:`~retrainer.deployments.rollout.decision.fit_prior`;
  ``rollout.decision.fit_after``, default 5). A version with no
  recorded offline difference gets the neutral prior N(0, tau^2).
* **posterior** — the normal-normal update with the stage's paired estimate (none yet: the prior).
* **verdict** — :func:`~retrainer.deployments.rollout.decision.decide`: promote when not worse than
  the margin, reject when worse or a guardrail failed, otherwise keep collecting; at
  ``decision.max_duration`` by the posterior mean, never rejected because time ran out.

The evidence dict this returns is what the ledger, ``retrainer rollout status --json`` and the
demo show: the prior, the posterior (mean, 95% interval, P(worse by more than the margin),
P(worse), expected loss), the labelled and unlabelled pair counts and ``posterior_mean`` (the
online delta the prior fit reads back from finished rollouts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from retrainer.config import DecisionConfig
from retrainer.deployments.rollout.decision import (
    DecisionRule,
    Posterior,
    Prior,
    Verdict,
    decide,
    fit_prior,
    prior_from_offline,
    update,
)

if TYPE_CHECKING:
    from retrainer.deployments.rollout.evidence import OnlineEvidence
    from retrainer.store import Store

@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    prior: Prior
    posterior: Posterior
    evidence: dict[str, Any]


def rule_from(decision: DecisionConfig) -> DecisionRule:
    return DecisionRule(margin=decision.margin, p_worse_max=decision.p_worse_max,
                        max_expected_loss=decision.max_expected_loss, p_harm_reject=decision.p_harm_reject,
                        min_labelled=decision.min_labelled)


def prior_for(decision: DecisionConfig, store: Store, model_name: str, version: str) -> Prior:
    """The prior of ``version``'s delta from its offline holdout difference (see the module doc)."""
    offline = store.offline_delta(model_name, version)
    delta_off, se_off = offline if offline is not None else (0.0, 0.0)
    history = store.offline_online_history(model_name)
    if offline is not None and len(history) >= decision.fit_after:
        return fit_prior(history, delta_off, se_off, decision.kappa, decision.tau, min_rollouts=decision.fit_after)
    prior = prior_from_offline(delta_off, se_off, kappa=decision.kappa, tau=decision.tau)
    if offline is None:
        return Prior(prior.mean, prior.sd, "neutral: no offline holdout difference recorded for this version")
    return prior


def judge(
    prior: Prior, online: OnlineEvidence, decision: DecisionConfig, *, at_max_duration: bool,
) -> Judgement:
    """The posterior and the verdict of one look. A promotion also needs the guardrails judged and
    the stage's minimum run (``online.not_ready``): until then it is a wait, saying what for."""
    posterior = update(prior, online.estimate)
    verdict = decide(posterior, rule_from(decision), guardrail_failure=online.guardrail_failure,
                     at_max_duration=at_max_duration, n_labelled=online.n_labelled, n_unlabelled=online.n_unlabelled)
    if verdict.action == "promote" and online.not_ready:
        verdict = Verdict("continue", f"{verdict.reason}; but not yet: " + "; ".join(online.not_ready), verdict.evidence)
    return Judgement(verdict, prior, posterior, evidence(prior, posterior, online, decision, verdict))


def evidence(prior: Prior, posterior: Posterior, online: OnlineEvidence, decision: DecisionConfig,
             verdict: Verdict) -> dict[str, Any]:
    """The look's evidence: the rule's own figures (``decide``'s evidence) grouped as ``posterior``,
    with the prior, the online estimate, the guardrails and ``posterior_mean`` at the top level."""
    ev = verdict.evidence
    return {
        "action": verdict.action, "reason": verdict.reason,
        "posterior_mean": float(posterior.mean),
        "posterior": {"mean": ev["posterior_mean"], "sd": ev["posterior_sd"], "interval": ev["interval_95"],
                      "p_worse_than_margin": ev["p_worse_than_margin"], "p_worse": ev["p_below_zero"],
                      "expected_loss": ev["expected_loss"], "margin": decision.margin},
        "rule": ev["rule"], "at_max_duration": ev.get("at_max_duration", False),
        "decided_by": ev.get("decided_by"),
        "prior": prior.to_dict(),
        **online.to_dict(),
    }


def summary_line(evidence: dict[str, Any] | None) -> str | None:
    """One line of a look's posterior for delta; None when the look had none (a guard look, a start)."""
    post = (evidence or {}).get("posterior")
    if not post or not isinstance(post, dict) or "interval" not in post:
        return None
    lo, hi = post["interval"]
    return (f"delta {post['mean']:+.4f} [{lo:+.4f}, {hi:+.4f}], P(worse by > {post['margin']:g}) "
            f"{post['p_worse_than_margin']:.3f}, expected loss {post['expected_loss']:.4f}, "
            f"{evidence.get('n_labelled', 0)} labelled + {evidence.get('n_unlabelled', 0)} label-free pairs")


__all__ = ["Judgement", "evidence", "judge", "prior_for", "rule_from", "summary_line"]
