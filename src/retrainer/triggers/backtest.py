"""``backtest``: replay a policy over logged history to see when it would have fired.

Each step evaluates the same trigger code the monitor runs, on a context pinned to the step's
instant, so the context's clamping guarantees there is no look-ahead: a step reads only
predictions made before it and labels received by it. What the replay carries from step to step
is what the live loop would carry:

* **cooldown**: a step where the policy fires counts as a retrain at that instant, so later
  steps see ``last_retrain_at`` = that step (before the first simulated retrain, the latest
  successful run logged at or before ``start``);
* **hysteresis**: the raw outcomes of the earlier steps are the history.

The champion and its reference profile stay as logged (by default the store's current champion
and its profile; or the ``champion`` given) for every step: a simulated retrain trains no new
model, so drift is always measured against the logged reference and ``model_age`` against the
logged champion's age. Nothing is written to the audit table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from retrainer.store.runs import RETRAINED_STATUSES
from retrainer.config import RetrainerConfig
from retrainer.profiles import profile_arrays
from retrainer.frozen import deep_freeze
from retrainer.triggers.check import champion_from_store
from retrainer.triggers.context import ChampionInfo, TriggerContext
from retrainer.triggers.decision import Decision
from retrainer.triggers.policy import Policy, build_policy


@dataclass(frozen=True)
class BacktestStep:
    """The policy at one instant: guarded and raw outcome, and each trigger's Decision."""

    at: datetime
    should_retrain: bool
    raw_fired: bool
    last_retrain_at: datetime | None
    decision: Decision
    children: tuple[Decision, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "should_retrain": self.should_retrain,
            "raw_fired": self.raw_fired,
            "last_retrain_at": None if self.last_retrain_at is None else self.last_retrain_at.isoformat(),
            "reason": self.decision.reason,
            "triggers": {d.trigger: {"fired": d.fired, "status": d.status, "value": d.value, "threshold": d.threshold}
                         for d in self.children},
        }


@dataclass(frozen=True)
class BacktestResult:
    model_name: str
    start: datetime
    end: datetime
    every: timedelta
    steps: tuple[BacktestStep, ...] = field(default_factory=tuple)

    @property
    def fires(self) -> list[datetime]:
        """Instants at which the policy would have started a retrain."""
        return [s.at for s in self.steps if s.should_retrain]

    @property
    def triggers(self) -> list[str]:
        return [d.trigger for d in self.steps[0].children] if self.steps else []

    def series(self) -> Mapping[str, dict[str, list[Any]]]:
        """Per trigger: ``at``, ``value``, ``threshold``, ``fired``, ``status`` lists (for plots and tables)."""
        out: dict[str, dict[str, list[Any]]] = {}
        for step in self.steps:
            for d in step.children:
                s = out.setdefault(d.trigger, {"at": [], "value": [], "threshold": [], "fired": [], "status": []})
                s["at"].append(step.at)
                s["value"].append(d.value)
                s["threshold"].append(d.threshold)
                s["fired"].append(d.fired)
                s["status"].append(d.status)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "every_seconds": self.every.total_seconds(),
            "fires": [t.isoformat() for t in self.fires],
            "steps": [s.to_dict() for s in self.steps],
        }


def _initial_last_retrain(store: Any, model: str, start: datetime) -> datetime | None:
    runs = getattr(store, "runs", None)
    if runs is None:
        return None
    done = [r.finished_at for r in runs(model, limit=100_000)
            if r.status in RETRAINED_STATUSES and r.finished_at is not None and r.finished_at <= start]
    return max(done, default=None)


def backtest(
    cfg: RetrainerConfig,
    *,
    store: Any,
    start: datetime,
    end: datetime,
    every: timedelta,
    policy: Policy | None = None,
    champion: ChampionInfo | None = None,
    reference: Mapping[str, Any] | None = None,
    last_retrain_at: datetime | None = None,
) -> BacktestResult:
    """Evaluate the policy at ``start``, ``start + every``, ... up to ``end`` (inclusive).

    ``store`` is any :class:`~retrainer.windows.WindowSource` (the SQL store, or
    ``retrainer.testing.InMemoryWindowSource`` with ``champion``/``reference`` given).
    """
    if every <= timedelta(0):
        raise ValueError(f"every must be a positive duration, got {every!r}")
    if end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    model = cfg.model.name
    policy = policy or build_policy(cfg)
    if champion is None and reference is None and hasattr(store, "champion"):
        champion, reference = champion_from_store(store, model)
    if reference is not None:
        reference = deep_freeze(profile_arrays(reference))  # frozen once, shared by every step
    last = last_retrain_at if last_retrain_at is not None else _initial_last_retrain(store, model, start)
    history: list[bool] = []
    steps: list[BacktestStep] = []
    at = start
    while at <= end:
        ctx = TriggerContext(model_name=model, now=at, source=store, last_retrain_at=last,
                             champion=champion, reference=reference)
        result = policy.check(ctx, tuple(history))
        steps.append(BacktestStep(at, result.should_retrain, result.raw.fired, last, result.decision, result.children))
        history.append(result.raw.fired)
        if result.should_retrain:
            last = at  # the simulated retrain: cooldown and schedules count from here
        at += every
    return BacktestResult(model, start, end, every, tuple(steps))


__all__ = ["BacktestResult", "BacktestStep", "backtest"]
