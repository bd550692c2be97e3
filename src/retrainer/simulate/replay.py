"""Replay one policy over the step grid, as the live loop would have run it.

At each step ``t_k`` (k >= 1) the policy is checked on a :class:`TriggerContext` pinned to
``t_k`` over the policy's own simulated log (:class:`~retrainer.simulate.source.ReplaySource`):
it sees the predictions its deployed models made before ``t_k`` and the labels arrived by then,
``last_retrain_at`` and the retrain history of *its* simulated runs, and the champion's reference
profile — what the monitor flow would see. When it fires, the model trained at ``t_k`` (cached,
shared by every policy) is gated against the champion on its holdout; if accepted it serves from
``t_k`` on. Retraining takes no simulated time. Step 0 serves the model trained at ``start``
(every policy starts from it; it is not counted as a retrain).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from retrainer.errors import InsufficientDataError
from retrainer.simulate.models import ModelCache, TrainedModel
from retrainer.simulate.policies import ComparedPolicy
from retrainer.simulate.source import ReplaySource
from retrainer.triggers.context import ChampionInfo, TriggerContext
from retrainer.triggers.undecided import Undecided, why_undecided
from retrainer.windows import RetrainRecord

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class StepOutcome:
    """One step of one policy: what was decided at its start and how the deployed model did."""

    at: datetime
    version: str  # the model that served the step
    fired: bool  # the policy asked for a retrain at ``at``
    retrained: bool  # a model was trained (fired and the training window had enough rows)
    accepted: bool  # ... and the gate let it serve
    rows: int  # labelled rows scored
    errors: int
    metrics: Mapping[str, float] = field(default_factory=dict)
    reason: str = ""
    status: str = ""  # the policy's raw status at ``at`` ("" at step 0 and for a fixed schedule)
    undecided: str = ""  # why the policy could not decide (insufficient_data), else ""

    def to_dict(self) -> dict[str, Any]:
        return {"at": self.at.isoformat(), "version": self.version, "fired": self.fired,
                "retrained": self.retrained, "accepted": self.accepted, "rows": self.rows,
                "errors": self.errors, "reason": self.reason, "status": self.status or None,
                "undecided": self.undecided or None,
                # NaN (undefined on this step, e.g. roc_auc with one class) is null: strict JSON.
                "metrics": {k: (None if v != v else v) for k, v in self.metrics.items()}}


@dataclass(frozen=True)
class PolicyRun:
    name: str
    steps: tuple[StepOutcome, ...]

    @property
    def retrains(self) -> int:
        return sum(s.retrained for s in self.steps)

    @property
    def deployments(self) -> int:
        return sum(s.accepted for s in self.steps)

    @property
    def failed(self) -> int:
        """Steps where the policy fired but no model could be trained (too few rows)."""
        return sum(s.fired and not s.retrained for s in self.steps)

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.steps)

    def undecided(self) -> Undecided:
        """The share of checked steps where the policy could not decide (step 0 is not a check)."""
        return Undecided.from_reasons([s.undecided for s in self.steps if s.status])

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.steps)


def initial_model(cache: ModelCache) -> TrainedModel:
    try:
        return cache.at_step(0)
    except InsufficientDataError as exc:
        raise InsufficientDataError(f"no initial model can be trained at --start: {exc}") from None


def _serve(cache: ModelCache, source: ReplaySource | None, model: TrainedModel, k: int) -> tuple[int, dict[str, float]]:
    if source is not None:
        y_pred, score = cache.step_predictions(model, k)
        source.record_predictions(cache.grid.step_slice(k), y_pred, score, model.version)
    return int(cache.step_errors(model)[k]), cache.step_metrics(model, k)


def _record(model: TrainedModel, status: str, duration_s: float | None, *,
            offline_delta: dict[str, float] | None = None, champion_since: datetime | None = None) -> RetrainRecord:
    metrics = {k: v for k, v in model.holdout_metrics.items() if v == v}  # NaN (undefined) left out
    return RetrainRecord(model.trained_at, metrics, duration_s=duration_s, status=status, version=model.version,
                         offline_delta=offline_delta, champion_since=champion_since)


def replay_policy(
    compared: ComparedPolicy,
    cache: ModelCache,
    *,
    model_name: str,
    retrain_duration_s: float | None = None,
    progress: Progress | None = None,
) -> PolicyRun:
    """Run ``compared.policy`` over ``cache.grid``. ``retrain_duration_s`` is what each simulated
    run records as its duration (None: unknown), so the replay does not depend on wall-clock time."""
    assert compared.policy is not None, "the oracle is solved, not replayed"
    policy, grid = compared.policy, cache.grid
    source = ReplaySource(cache.history)
    champion = initial_model(cache)
    source.record_retrain(_record(champion, "success", retrain_duration_s))
    last_retrain_at = grid.instants[0]
    history: list[bool] = []
    steps: list[StepOutcome] = []
    for k, at in enumerate(grid.instants):
        fired = retrained = accepted = False
        reason = "initial model" if k == 0 else ""
        status = undecided = ""
        if k > 0:
            ctx = TriggerContext(model_name=model_name, now=at, source=source, last_retrain_at=last_retrain_at,
                                 champion=ChampionInfo(champion.version, created_at=champion.trained_at),
                                 reference=cache.reference(champion))
            result = policy.check(ctx, tuple(history))
            history.append(result.raw.fired)
            fired, reason = result.should_retrain, result.decision.reason
            status, undecided = result.raw.status, why_undecided(result.raw, result.children)
            if fired:
                try:
                    candidate = cache.at_step(k)
                except InsufficientDataError as exc:
                    reason = f"{reason} Training failed: {exc}"
                else:
                    retrained = True
                    last_retrain_at = at
                    verdict = cache.gate(candidate, champion)
                    accepted = verdict.accepted
                    reason = f"{reason} Gate: {verdict.reason}"
                    source.record_retrain(_record(candidate, "success" if accepted else "no_improvement",
                                                  retrain_duration_s, offline_delta=cache.offline_delta(candidate, champion),
                                                  champion_since=champion.trained_at))
                    if accepted:
                        champion = candidate
        errors, metrics = _serve(cache, source, champion, k)
        steps.append(StepOutcome(at, champion.version, fired, retrained, accepted, int(cache.step_rows[k]),
                                 errors, metrics, reason, status, undecided))
        if progress is not None:
            progress(compared.name, k + 1, len(grid))
    return PolicyRun(compared.name, tuple(steps))


def run_schedule(name: str, retrain_steps: Iterable[int], cache: ModelCache, *, progress: Progress | None = None) -> PolicyRun:
    """Serve a fixed schedule: retrain at each of ``retrain_steps`` and deploy without a gate
    (how the oracle's answer is played back)."""
    planned = set(retrain_steps)
    champion = initial_model(cache)
    steps: list[StepOutcome] = []
    for k, at in enumerate(cache.grid.instants):
        retrain = k > 0 and k in planned
        if retrain:
            champion = cache.at_step(k)
        errors, metrics = _serve(cache, None, champion, k)
        steps.append(StepOutcome(at, champion.version, retrain, retrain, retrain, int(cache.step_rows[k]),
                                 errors, metrics, "scheduled" if retrain else ("initial model" if k == 0 else "")))
        if progress is not None:
            progress(name, k + 1, len(cache.grid))
    return PolicyRun(name, tuple(steps))


__all__ = ["PolicyRun", "Progress", "StepOutcome", "initial_model", "replay_policy", "run_schedule"]
