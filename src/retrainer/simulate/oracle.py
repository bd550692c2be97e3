"""The oracle: the cheapest retrain schedule in hindsight, on the policies' own step grid.

A schedule is a set of steps ``R ⊆ {1, ..., S-1}`` at which a model is trained (with the same
training rule as every policy: the rows visible then) and deployed; the model trained at the
latest retrain at or before step ``k`` (step 0: the initial model) serves step ``k``. Its cost is
``retrain_cost x |R| + error_cost x errors``. With ``E[h, k]`` the errors of the model trained at
``h`` on step ``k`` and ``C[h, i] = sum(E[h, h:i])``, the cheapest schedule whose last retrain
before ``i`` is ``h`` decomposes, so dynamic programming over the last retrain point finds it::

    best[0] = 0
    best[i] = retrain_cost + min_{h < i} (best[h] + error_cost x C[h, i])       (i = 1 .. S-1)
    oracle  = min_h (best[h] + error_cost x C[h, S])

**Complexity**: S trainings and S predictions over the rows from their step on (shared with the
policies through the model cache), then O(S²) additions and an S x S matrix of error counts
(8 bytes each). ``max_steps`` (default :data:`DEFAULT_MAX_STEPS`) caps S: above it the solver
refuses with a clear error instead of allocating gigabytes.

**The gate**: the oracle deploys every model it trains. A gated policy that retrains and is
rejected pays the retrain and keeps serving the same model, so every sequence of *deployed*
models a gated policy can produce is also a schedule here, for no more cost: the oracle's cost
is a lower bound of every policy's, and regret is >= 0. A step whose training window has too
few rows cannot be a retrain point.

>>> import numpy as np
>>> E = np.array([[5, 5, 5], [0, 1, 1], [0, 0, 0]])
>>> solve_oracle(E, retrain_cost=3, error_cost=1).retrain_steps   # 5+1+1+3 = 10 beats 5+5+5 = 15
(1,)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from retrainer.errors import ConfigError

DEFAULT_MAX_STEPS = 4000


@dataclass(frozen=True)
class OracleSolution:
    retrain_steps: tuple[int, ...]
    retrains: int
    errors: int
    cost: float


def schedule_errors(errors: np.ndarray, retrain_steps: Iterable[int]) -> int:
    """Total errors of a schedule: each step served by the latest model trained at or before it."""
    planned = set(retrain_steps)
    serving, total = 0, 0
    for k in range(errors.shape[1]):
        if k in planned:
            serving = k
        total += int(errors[serving, k])
    return total


def check_oracle_size(steps: int, max_steps: int = DEFAULT_MAX_STEPS) -> None:
    """Refuse a grid the oracle would need hours and gigabytes for, before anything is trained."""
    if steps > max_steps:
        raise ConfigError(
            f"the oracle over {steps} steps needs {steps} trainings and an {steps}x{steps} table; the cap is "
            f"{max_steps} steps: use a longer --every, a shorter span, or drop `oracle` from --compare"
        )


def solve_oracle(
    errors: np.ndarray,
    *,
    retrain_cost: float,
    error_cost: float,
    trainable: np.ndarray | None = None,
    max_steps: int = DEFAULT_MAX_STEPS,
) -> OracleSolution:
    """The cheapest schedule for the ``S x S`` matrix ``errors`` (row ``h``: the model trained at
    step ``h``; entries before ``h`` are ignored). ``trainable[h]`` False excludes step ``h``.
    Ties go to the earliest last retrain, so the answer is deterministic."""
    E = np.asarray(errors, dtype=np.int64)
    S = E.shape[0]
    if E.shape != (S, S) or S == 0:
        raise ValueError(f"errors must be a non-empty square matrix, got shape {E.shape}")
    check_oracle_size(S, max_steps)
    ok = np.ones(S, bool) if trainable is None else np.asarray(trainable, bool).copy()
    ok[0] = True  # the initial model exists (the replay refuses to start otherwise)
    E = np.triu(E)  # a model cannot serve before it is trained
    C = np.concatenate([np.zeros((S, 1), np.int64), np.cumsum(E, axis=1)], axis=1)  # C[h, i] = sum E[h, :i]
    best = np.full(S, np.inf)
    parent = np.full(S, -1)
    best[0] = 0.0
    for i in range(1, S):
        if not ok[i]:
            continue
        candidates = best[:i] + error_cost * C[:i, i]
        h = int(np.argmin(candidates))
        best[i], parent[i] = retrain_cost + candidates[h], h
    final = best + error_cost * C[:, S]
    last = int(np.argmin(final))
    steps: list[int] = []
    node = last
    while node > 0:
        steps.append(node)
        node = int(parent[node])
    schedule = tuple(sorted(steps))
    n_errors = schedule_errors(E, schedule)
    # The cost from integer counts, not the DP's running float sum: equal to any policy's formula.
    return OracleSolution(schedule, len(schedule), n_errors, float(retrain_cost * len(schedule) + error_cost * n_errors))


__all__ = ["DEFAULT_MAX_STEPS", "OracleSolution", "check_oracle_size", "schedule_errors", "solve_oracle"]
