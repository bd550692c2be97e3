"""A/B test analysis: the challenger's delta on live traffic whose outcome its answers may change.

An A/B test is for models whose predictions change the outcome they are judged on
(recommendations, pricing), where a shadow cannot see the effect. Its evidence is read **by test
id and arm** (``predictions.ab_test_id`` / ``arm``), never by model version (the champion's version
also serves outside the test), and its estimate of delta = accuracy(challenger) - accuracy(champion)
is **clustered by unit**: units are what is randomised, and a unit that sends many requests sends
correlated ones, so treating predictions as independent would understate the variance
(:func:`retrainer.stats.paired.clustered_difference`).

The verdict is the rollout's one rule (:mod:`retrainer.deployments.rollout.posterior`): the prior from
the challenger's offline holdout difference, updated with this estimate; promote when not worse by
the margin, reject when worse, otherwise keep collecting; at ``rollout.decision.max_duration`` by
the posterior mean. One guard comes first: **sample-ratio mismatch** — the units assigned to each
arm are checked against the planned split (chi-square, :func:`retrainer.stats.proportions.srm_test`);
at p < ``srm_alpha`` assignment or logging is broken and no verdict is given until it is fixed.

The verdict logic is a pure function (:func:`decide`); :func:`analyze` gathers the rows from the store.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from retrainer.config import ABConfig, DecisionConfig, GateConfig
from retrainer.deployments.rollout.ab import CHALLENGER_ARM, CHAMPION_ARM
from retrainer.deployments.rollout.decision import Prior
from retrainer.deployments.rollout.evidence import MIN_LABELLED_PAIRS, OnlineEvidence
from retrainer.deployments.rollout.posterior import judge, prior_for
from retrainer.metrics import label_metrics, resolve_classes
from retrainer.stats.paired import clustered_difference
from retrainer.stats.proportions import srm_test

if TYPE_CHECKING:
    from retrainer.store import Store
    from retrainer.store.records import ABTest

Verdict = Literal["promote_challenger", "keep_champion", "keep_collecting"]
_VERDICTS: dict[str, Verdict] = {"promote": "promote_challenger", "reject": "keep_champion", "continue": "keep_collecting"}


@dataclass(frozen=True)
class ArmResult:
    arm: str
    version: str
    units: int  # distinct units assigned (SRM check)
    n: int  # labelled predictions
    labelled_units: int  # distinct units among them (the clusters)
    correct: int
    accuracy: float | None
    gate_metric: float | None


@dataclass(frozen=True)
class ABVerdict:
    verdict: Verdict
    reason: str
    diff: float | None  # the clustered estimate of accuracy challenger - champion
    se: float | None
    srm_p_value: float | None
    srm_mismatch: bool
    posterior: dict[str, Any] = field(default_factory=dict)  # the rule's evidence (posterior.evidence)


@dataclass(frozen=True)
class ABAnalysis:
    ab_test_id: int
    model_name: str
    started_at: datetime
    as_of: datetime
    split: float
    tested_metric: str
    gate_metric_name: str
    arms: dict[str, ArmResult]
    decision: ABVerdict
    notes: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["verdict"] = self.verdict
        return out


def decide(
    correct: np.ndarray, challenger: np.ndarray, unit: np.ndarray, *, units: tuple[int, int] | None, split: float,
    srm_alpha: float, prior: Prior, decision: DecisionConfig, at_max_duration: bool = False,
) -> ABVerdict:
    """The verdict from labelled predictions: ``correct`` (0/1), ``challenger`` (True in the
    challenger arm), ``unit`` (the randomised unit of each). ``units``: units assigned per arm
    (champion, challenger) for the SRM check; None skips it."""
    srm_p: float | None = None
    if units is not None and sum(units) > 0:
        srm_p = srm_test(list(units), [1.0 - split, split])
    srm_bad = srm_p is not None and srm_p < srm_alpha
    challenger = np.asarray(challenger, dtype=bool)
    n_b, n_a = int(challenger.sum()), int((~challenger).sum())
    estimate = None
    if min(n_a, n_b) >= MIN_LABELLED_PAIRS and min(len(set(unit[challenger])), len(set(unit[~challenger]))) >= 2:
        estimate = clustered_difference(np.asarray(correct, dtype=np.float64), challenger, unit)
    not_ready = []
    if srm_bad:
        not_ready.append(f"sample-ratio mismatch: units per arm {units} do not fit the {split:.0%} split "
                         f"(p={srm_p:.2g} < {srm_alpha}); assignment or logging is broken, no verdict until it is fixed")
    online = OnlineEvidence(estimate, n_a + n_b, 0, guardrails_judged=not srm_bad, not_ready=not_ready,
                            facts={"labelled_per_arm": {CHAMPION_ARM: n_a, CHALLENGER_ARM: n_b}})
    j = judge(prior, online, decision, at_max_duration=at_max_duration)
    action = "continue" if srm_bad else j.verdict.action  # a broken assignment decides nothing, either way
    reason = not_ready[0] if srm_bad else j.verdict.reason
    if estimate is None and not srm_bad:
        reason = (f"{reason} (fewer than {MIN_LABELLED_PAIRS} labelled predictions in an arm: "
                  f"{n_a} champion, {n_b} challenger; the prior alone)")
    return ABVerdict(_VERDICTS[action], reason, None if estimate is None else float(estimate.mean),
                     None if estimate is None else float(estimate.se), srm_p, srm_bad,
                     {**j.evidence, "action": action, "reason": reason})


def _gate_metric(y_true: np.ndarray, y_pred: np.ndarray, metric: str) -> float | None:
    """The arm's gate metric by :mod:`retrainer.metrics`' rules (None when undefined: roc_auc has no
    scores here)."""
    if y_true.size == 0 or metric == "roc_auc":
        return None
    value = label_metrics(y_true, y_pred, resolve_classes(y_true, y_pred))[metric]
    return None if math.isnan(value) else float(value)


def analyze(
    store: Store, test: ABTest, *, gate: GateConfig, decision: DecisionConfig | None = None,
    prior: Prior | None = None, as_of: datetime | None = None,
) -> ABAnalysis:
    """Analyse A/B test ``test`` (a :class:`retrainer.store.records.ABTest`) from the store.

    The SRM level is the test's own (``test.config``, the ABConfig it started with), so a later
    config edit does not change the rules of a running test. ``prior`` defaults to the challenger's
    offline prior (:func:`~retrainer.deployments.rollout.posterior.prior_for`).
    """
    as_of = as_of or datetime.now(UTC)
    decision = decision or DecisionConfig()
    ab = ABConfig.model_validate({k: v for k, v in (test.config or {}).items() if k in ABConfig.model_fields})
    prior = prior or prior_for(decision, store, test.model_name, test.challenger_version)
    end = test.stopped_at or as_of
    rows = store.ab_arm_rows(test, until=end, as_of=as_of)
    arm = np.array([r[0] for r in rows], dtype=object)
    unit = np.array([r[1] if r[1] is not None else f"request-{i}" for i, r in enumerate(rows)], dtype=object)
    y_pred = np.array([r[2] for r in rows], dtype=np.float64)
    y_true = np.array([r[3] for r in rows], dtype=np.float64)
    correct = (y_pred == y_true).astype(np.float64)
    assigned = store.assignment_counts(test.id)
    arms: dict[str, ArmResult] = {}
    for name, version in ((CHAMPION_ARM, test.champion_version), (CHALLENGER_ARM, test.challenger_version)):
        mine = arm == name
        n = int(mine.sum())
        arms[name] = ArmResult(
            arm=name, version=version, units=int(assigned.get(name, 0)), n=n, labelled_units=len(set(unit[mine])),
            correct=int(correct[mine].sum()), accuracy=float(correct[mine].mean()) if n else None,
            gate_metric=_gate_metric(y_true[mine], y_pred[mine], gate.metric))
    a, b = arms[CHAMPION_ARM], arms[CHALLENGER_ARM]
    unit_counts = (a.units, b.units) if a.units + b.units else None
    keep = (arm == CHAMPION_ARM) | (arm == CHALLENGER_ARM)
    verdict = decide(correct[keep], arm[keep] == CHALLENGER_ARM, unit[keep], units=unit_counts, split=test.split,
                     srm_alpha=ab.srm_alpha, prior=prior, decision=decision,
                     at_max_duration=end - test.started_at >= decision.max_duration)
    notes = []
    if unit_counts is None:
        notes.append("no unit assignments recorded yet: the sample-ratio check has nothing to check")
    return ABAnalysis(
        ab_test_id=test.id, model_name=test.model_name, started_at=test.started_at, as_of=as_of, split=test.split,
        tested_metric="accuracy", gate_metric_name=gate.metric, arms=arms, decision=verdict, notes=notes,
    )


__all__ = ["ABAnalysis", "ABVerdict", "ArmResult", "Verdict", "analyze", "decide"]
