"""The oracle's dynamic programme equals brute force over every schedule."""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
import pytest

from retrainer.errors import ConfigError
from retrainer.simulate import Costs, History, SimulationSettings, simulate
from retrainer.simulate.history import StepGrid
from retrainer.simulate.models import ModelCache
from retrainer.simulate.oracle import schedule_errors, solve_oracle

from .conftest import at


def brute_force(E: np.ndarray, rc: float, ec: float, trainable: np.ndarray | None = None) -> float:
    S = E.shape[0]
    allowed = [k for k in range(1, S) if trainable is None or trainable[k]]
    best = np.inf
    for r in range(len(allowed) + 1):
        for chosen in itertools.combinations(allowed, r):
            best = min(best, float(rc * len(chosen) + ec * schedule_errors(np.triu(E), chosen)))
    return best


@pytest.mark.parametrize("seed", range(12))
def test_oracle_equals_brute_force_on_random_grids(seed):
    rng = np.random.default_rng(seed)
    S = int(rng.integers(1, 10))
    # Errors that grow with a model's age, with noise: the interesting regime.
    age = np.maximum(0, np.arange(S)[None, :] - np.arange(S)[:, None])
    E = np.triu(rng.poisson(3 + age * rng.uniform(0, 4)))
    rc, ec = float(rng.choice([0.0, 1.0, 7.5, 40.0])), float(rng.choice([0.5, 1.0, 3.0]))
    trainable = rng.random(S) > 0.2
    solution = solve_oracle(E, retrain_cost=rc, error_cost=ec, trainable=trainable)
    assert solution.cost == brute_force(E, rc, ec, trainable)
    assert all(trainable[k] for k in solution.retrain_steps)
    assert solution.cost == rc * solution.retrains + ec * schedule_errors(E, solution.retrain_steps)


def test_oracle_known_answer():
    # Model 0 decays fast; a retrain at step 2 pays (cost 2 + 0 + 0 < 6 + 6).
    E = np.array([[0, 1, 6, 6], [0, 0, 5, 5], [0, 0, 0, 0], [0, 0, 0, 0]])
    s = solve_oracle(E, retrain_cost=2, error_cost=1)
    assert (s.retrain_steps, s.errors, s.cost) == ((2,), 1, 3.0)
    assert solve_oracle(E, retrain_cost=100, error_cost=1).retrain_steps == ()


def test_oracle_cap_is_a_clear_error():
    with pytest.raises(ConfigError, match="cap is 5 steps"):
        solve_oracle(np.zeros((6, 6), int), retrain_cost=1, error_cost=1, max_steps=5)


def test_oracle_on_a_real_replay_equals_brute_force(frame, cfg):
    history = History.from_frame(frame, cfg.data, label_delay=timedelta(days=1))
    grid = StepGrid.build(history, at(60), at(60 + 8 * 15), timedelta(days=15))
    cache = ModelCache(history, grid, cfg, train_window=cfg.data.window)
    E = np.stack([cache.step_errors(cache.at_step(h)) for h in range(len(grid))])
    expected = brute_force(E, 60.0, 1.0)
    settings = SimulationSettings(start=at(60), end=at(60 + 8 * 15), every=timedelta(days=15),
                                  policies=["never", "always", "oracle"], costs=Costs(60.0, 1.0),
                                  label_delay=timedelta(days=1))
    result = simulate(cfg, history, settings)
    assert result.oracle is not None and result.oracle.cost == expected
    by = {s.policy: s for s in result.summaries}
    assert by["oracle"].cost == expected and by["oracle"].regret == 0
    # The playback of the oracle's schedule costs what the DP said, and nothing replayed beats it.
    assert by["oracle"].errors == result.oracle.errors
    assert all(s.regret >= 0 for s in result.summaries)
    assert 0 < result.oracle.retrains < len(grid) - 1  # the drift makes some, not all, retrains pay


def test_simulate_refuses_an_oversized_oracle_before_training(frame, cfg):
    history = History.from_frame(frame, cfg.data)
    settings = SimulationSettings(start=at(50), end=at(60), every=timedelta(hours=1), policies=["never", "oracle"],
                                  max_oracle_steps=100)
    with pytest.raises(ConfigError, match="240 steps"):
        simulate(cfg, history, settings)
