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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from retrainer.store.runs import RETRAINED_STATUSES
from retrainer.config import RetrainerConfig
from retrainer.profiles import profile_arrays
from retrainer.frozen import deep_freeze
from retrainer.triggers.check import ChampionSource, champion_from_store
from retrainer.triggers.context import ChampionInfo, TriggerContext
from retrainer.triggers.decision import Decision
from retrainer.triggers.policy import Combination, Policy, build_policy
from retrainer.triggers.undecided import Undecided
from retrainer.windows import WindowSource


@dataclass(frozen=True)
class BacktestStep:
    """The policy at one instant: guarded and raw outcome, and each trigger's Decision."""

    at: datetime
    should_retrain: bool
    raw_fired: bool
    last_retrain_at: datetime | None
    decision: Decision
    children: tuple[Decision, ...]
    undecided: str = ""  # why the policy could not decide at this step (insufficient_data), else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "undecided": self.undecided or None,
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
    kinds: Mapping[str, str] = field(default_factory=dict)  # trigger label -> its type (entry-point name)

    @property
    def fires(self) -> list[datetime]:
        """Instants at which the policy would have started a retrain."""
        return [s.at for s in self.steps if s.should_retrain]

    def undecided(self) -> Undecided:
        """The share of steps where the policy could not decide, and why at the latest of them."""
        return Undecided.from_reasons([s.undecided for s in self.steps])

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

    def quality(self) -> QualitySeries | None:
        """Estimated and realized performance per step (see :func:`quality_series`)."""
        return quality_series(self.steps, self.kinds)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "every_seconds": self.every.total_seconds(),
            "fires": [t.isoformat() for t in self.fires],
            "undecided": self.undecided().to_dict(),
            "steps": [s.to_dict() for s in self.steps],
        }


ESTIMATED, REALIZED = "estimated_performance", "performance"


@dataclass(frozen=True)
class QualitySeries:
    """One metric per step, as the policy's quality triggers saw it: the label-free estimate with
    its confidence interval (``estimated_performance``) and the realized value on matured labels
    (``performance``). Lists align with ``at``; None where a trigger had no figure that step."""

    metric: str
    at: list[datetime]
    estimated: list[float | None]
    ci_low: list[float | None]
    ci_high: list[float | None]
    estimated_fired: list[bool]
    estimated_threshold: list[float | None]
    realized: list[float | None]
    realized_fired: list[bool]
    realized_threshold: float | None


def _figures(evidence: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """(metrics, ci) of a decision's evidence: ``performance`` has ``metrics``;
    ``estimated_performance`` has ``estimate`` (metric -> value) and ``ci`` (metric -> [low, high])."""
    est = evidence.get("estimate")
    if isinstance(est, Mapping):
        if isinstance(est.get("metrics"), Mapping):
            return est["metrics"], est.get("ci") or {}
        return est, evidence.get("ci") or {}
    return evidence.get("metrics") or {}, evidence.get("ci") or {}


def quality_series(steps: Sequence[BacktestStep], kinds: Mapping[str, str]) -> QualitySeries | None:
    """Read the estimated and realized values of one metric out of the steps' decisions.

    The metric is the estimate's worst one (else the realized trigger's, else f1/accuracy),
    the first found that is in the evidence. None when the policy has neither trigger.
    """
    est = next((label for label, kind in kinds.items() if kind == ESTIMATED), None)
    real = next((label for label, kind in kinds.items() if kind == REALIZED), None)
    if est is None and real is None:
        return None
    by_step = [{d.trigger: d for d in s.children} for s in steps]
    candidates: list[str] = []
    for label in (est, real):
        candidates += [str(b[label].evidence["worst"]) for b in by_step if label in b and b[label].evidence.get("worst")]
    candidates += ["f1", "accuracy", "roc_auc", "precision", "recall"]
    seen = [m for b in by_step for label in (est, real) if label in b for m in _figures(b[label].evidence)[0]]
    metric = next((m for m in candidates if m in seen), candidates[0])

    def value(d: Decision | None) -> float | None:
        v = None if d is None else _figures(d.evidence)[0].get(metric)
        return None if v is None else float(v)

    def ci(d: Decision | None, i: int) -> float | None:
        c = None if d is None else _figures(d.evidence)[1].get(metric)
        return None if not c else float(c[i])

    def est_threshold(d: Decision | None) -> float | None:
        if d is None:
            return None
        lines = d.evidence.get("lines") or d.evidence.get("thresholds") or {}
        line = lines.get(metric) if isinstance(lines, Mapping) else None
        if line is None and d.evidence.get("worst") == metric:
            line = d.threshold
        return None if line is None else float(line)

    e = [b.get(est) if est else None for b in by_step]
    r = [b.get(real) if real else None for b in by_step]
    floors = [d.evidence.get("thresholds", {}).get(metric) for d in r if d is not None]
    return QualitySeries(
        metric=metric, at=[s.at for s in steps],
        estimated=[value(d) for d in e], ci_low=[ci(d, 0) for d in e], ci_high=[ci(d, 1) for d in e],
        estimated_fired=[bool(d and d.fired) for d in e], estimated_threshold=[est_threshold(d) for d in e],
        realized=[value(d) for d in r], realized_fired=[bool(d and d.fired) for d in r],
        realized_threshold=next((float(f) for f in floors if f is not None), None),
    )


def _initial_last_retrain(store: WindowSource, model: str, start: datetime) -> datetime | None:
    runs = getattr(store, "runs", None)
    if runs is None:
        return None
    done = [r.finished_at for r in runs(model, limit=100_000)
            if r.status in RETRAINED_STATUSES and r.finished_at is not None and r.finished_at <= start]
    return max(done, default=None)


def backtest(
    cfg: RetrainerConfig,
    *,
    store: WindowSource,
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
    if champion is None and reference is None and isinstance(store, ChampionSource):
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
        steps.append(BacktestStep(at, result.should_retrain, result.raw.fired, last, result.decision, result.children,
                                  result.undecided))
        history.append(result.raw.fired)
        if result.should_retrain:
            last = at  # the simulated retrain: cooldown and schedules count from here
        at += every
    root = policy.root
    children = root.triggers if isinstance(root, Combination) else (root,)
    return BacktestResult(model, start, end, every, tuple(steps), kinds={t.label: t.name for t in children})


__all__ = ["BacktestResult", "BacktestStep", "QualitySeries", "backtest", "quality_series"]
