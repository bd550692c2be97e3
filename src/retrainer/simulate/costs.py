"""What a policy cost: ``retrain_cost x retrains + error_cost x errors``, and its regret.

``retrains`` counts the runs that trained a model (whether the gate then kept it or not): the
compute was spent either way. ``errors`` counts wrong predictions of the deployed models on
the labelled rows of every step. Regret is ``cost - oracle cost`` (>= 0 up to the oracle's
definition: see :mod:`retrainer.simulate.oracle`).

>>> Costs(retrain_cost=50, error_cost=2).total(retrains=3, errors=10)
170.0
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from retrainer.errors import ConfigError
from retrainer.simulate.replay import PolicyRun


@dataclass(frozen=True)
class Costs:
    retrain_cost: float = 100.0
    error_cost: float = 1.0

    def __post_init__(self) -> None:
        for name in ("retrain_cost", "error_cost"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")

    def total(self, *, retrains: int, errors: int) -> float:
        return float(self.retrain_cost * retrains + self.error_cost * errors)


@dataclass(frozen=True)
class PolicySummary:
    """One policy's figures; ``metric`` is the gate metric, realized per step on the served rows."""

    policy: str
    retrains: int
    deployments: int
    failed_retrains: int
    rows: int
    errors: int
    accuracy: float
    metric: str
    mean_metric: float
    worst_metric: float
    worst_at: str | None
    cost: float
    regret: float | None
    undecided_share: float = 0.0  # checks where the policy could not decide (insufficient_data)
    undecided_flag: str | None = None  # one line naming why, when above half

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


def summarize(run: PolicyRun, costs: Costs, metric: str, *, oracle_cost: float | None) -> PolicySummary:
    values = [(s.metrics.get(metric, math.nan), s.at) for s in run.steps]
    defined = [(v, at) for v, at in values if not math.isnan(v)]
    worst = min(defined, key=lambda p: p[0]) if defined else (math.nan, None)
    cost = costs.total(retrains=run.retrains, errors=run.errors)
    undecided = run.undecided()
    return PolicySummary(
        policy=run.name,
        retrains=run.retrains,
        deployments=run.deployments,
        failed_retrains=run.failed,
        rows=run.rows,
        errors=run.errors,
        accuracy=1.0 - run.errors / run.rows if run.rows else math.nan,
        metric=metric,
        mean_metric=math.fsum(v for v, _ in defined) / len(defined) if defined else math.nan,
        worst_metric=worst[0],
        worst_at=None if worst[1] is None else worst[1].isoformat(),
        cost=cost,
        regret=None if oracle_cost is None else cost - oracle_cost,
        undecided_share=undecided.share,
        undecided_flag=undecided.flag(run.name) if undecided.flagged else None,
    )


__all__ = ["Costs", "PolicySummary", "summarize"]
