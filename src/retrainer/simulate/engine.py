"""``simulate``: replay every compared policy over one history and price what each did.

All policies share one :class:`~retrainer.simulate.models.ModelCache`, so a model trained at a
step is trained once; the oracle (when compared) needs the model of every step and is solved
last, from the same cache. Everything is deterministic: training uses the estimator's fixed seed,
no decision reads wall-clock time, and policies run in the order given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from retrainer.config import RetrainerConfig
from retrainer.durations import format_duration
from retrainer.errors import ConfigError
from retrainer.simulate.costs import Costs, PolicySummary, summarize
from retrainer.simulate.history import History, StepGrid
from retrainer.simulate.models import CacheStats, ModelCache
from retrainer.simulate.oracle import DEFAULT_MAX_STEPS, OracleSolution, check_oracle_size, solve_oracle
from retrainer.simulate.policies import ORACLE, build_compared_policy
from retrainer.simulate.replay import PolicyRun, Progress, initial_model, replay_policy, run_schedule

DEFAULT_COMPARE = ("never", "periodic:30d", "periodic:90d", "always", ORACLE)


@dataclass(frozen=True)
class SimulationSettings:
    start: datetime
    end: datetime
    every: timedelta
    policies: Sequence[str] = ("configured", *DEFAULT_COMPARE)
    costs: Costs = field(default_factory=Costs)
    label_delay: timedelta = timedelta(0)
    train_window: timedelta | None = None  # None: the configured data.window
    retrain_duration_s: float | None = None  # what each simulated run records as its duration
    max_oracle_steps: int = DEFAULT_MAX_STEPS

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(), "end": self.end.isoformat(), "every": format_duration(self.every),
            "policies": list(self.policies), "retrain_cost": self.costs.retrain_cost,
            "error_cost": self.costs.error_cost, "label_delay": format_duration(self.label_delay),
            "train_window": None if self.train_window is None else format_duration(self.train_window),
            "retrain_duration_s": self.retrain_duration_s,
        }


@dataclass(frozen=True)
class SimulationResult:
    model: str
    settings: SimulationSettings
    metric: str
    grid: StepGrid
    runs: tuple[PolicyRun, ...]
    summaries: tuple[PolicySummary, ...]
    oracle: OracleSolution | None
    cache: CacheStats

    def to_dict(self, *, steps: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "settings": self.settings.to_dict(),
            "steps": len(self.grid),
            "metric": self.metric,
            "policies": [s.to_dict() for s in self.summaries],
            "oracle": None if self.oracle is None else {"retrain_steps": list(self.oracle.retrain_steps),
                                                        "retrains": self.oracle.retrains,
                                                        "errors": self.oracle.errors, "cost": self.oracle.cost},
            "models_trained": self.cache.trained,
            "trainings_failed": self.cache.failed,
        }
        if steps:
            out["per_step"] = {r.name: [s.to_dict() for s in r.steps] for r in self.runs}
        return out


def _effective_window(cfg: RetrainerConfig, settings: SimulationSettings) -> timedelta | None:
    return settings.train_window if settings.train_window is not None else cfg.data.window


def simulate(
    cfg: RetrainerConfig,
    history: History,
    settings: SimulationSettings,
    *,
    progress: Progress | None = None,
    cache: ModelCache | None = None,
) -> SimulationResult:
    """Replay ``settings.policies`` over ``history`` on the step grid and summarise each.

    ``cache`` reuses the models of an earlier call on the same history, grid, estimator and
    training window (e.g. the same replay priced at several cost ratios); see :func:`model_cache`.
    """
    names = list(dict.fromkeys(settings.policies))  # a policy named twice runs once
    if not names:
        raise ConfigError("no policy to simulate: give --policy and/or --compare")
    costs = settings.costs
    settings = replace(settings, train_window=_effective_window(cfg, settings))
    compared = [build_compared_policy(n, cfg, retrain_cost=costs.retrain_cost, error_cost=costs.error_cost)
                for n in names]  # every spec is checked before any training starts
    grid = StepGrid.build(history, settings.start, settings.end, settings.every)
    if ORACLE in names:
        check_oracle_size(len(grid), settings.max_oracle_steps)  # before hours of training, not after
    if cache is None:
        cache = ModelCache(history, grid, cfg, train_window=settings.train_window)
    elif (cache.history is not history or cache.grid.instants != grid.instants or cache.train_window != settings.train_window
          or cache.cfg.estimator != cfg.estimator or cache.cfg.data != cfg.data or cache.cfg.gate != cfg.gate):
        raise ValueError("the model cache was built for another history, grid, window, estimator or gate")
    initial_model(cache)
    runs: dict[str, PolicyRun] = {}
    for policy in compared:
        if not policy.is_oracle:
            runs[policy.name] = replay_policy(policy, cache, model_name=cfg.model.name,
                                              retrain_duration_s=settings.retrain_duration_s, progress=progress)
    oracle = None
    if ORACLE in names:
        oracle = _solve(cache, costs, settings.max_oracle_steps, progress)
        runs[ORACLE] = run_schedule(ORACLE, oracle.retrain_steps, cache)
    metric = cfg.gate.metric
    oracle_cost = None if oracle is None else oracle.cost
    ordered = tuple(runs[n] for n in names)
    summaries = tuple(summarize(r, costs, metric, oracle_cost=oracle_cost) for r in ordered)
    return SimulationResult(cfg.model.name, settings, metric, grid, ordered, summaries, oracle, cache.stats)


def model_cache(cfg: RetrainerConfig, history: History, settings: SimulationSettings) -> ModelCache:
    """An empty cache for ``simulate(cfg, history, settings, cache=...)`` calls that differ only in
    policies and costs: each model is then trained once across all of them."""
    grid = StepGrid.build(history, settings.start, settings.end, settings.every)
    return ModelCache(history, grid, cfg, train_window=_effective_window(cfg, settings))


def _solve(cache: ModelCache, costs: Costs, max_steps: int, progress: Progress | None) -> OracleSolution:
    S = len(cache.grid)
    errors = np.zeros((S, S), np.int64)
    trainable = np.zeros(S, bool)
    for h in range(S):
        if cache.trainable(h):
            trainable[h] = True
            errors[h] = cache.step_errors(cache.at_step(h))
        if progress is not None:
            progress(ORACLE, h + 1, S)
    return solve_oracle(errors, retrain_cost=costs.retrain_cost, error_cost=costs.error_cost,
                        trainable=trainable, max_steps=max_steps)


__all__ = ["DEFAULT_COMPARE", "SimulationResult", "SimulationSettings", "model_cache", "simulate"]
