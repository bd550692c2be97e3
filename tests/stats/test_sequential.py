"""The guard's anytime-valid test: false rollbacks at the margin, power 5 points worse, every look allowed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from retrainer.errors import StatisticsError
from retrainer.stats.sequential import guard_sequence, log_wealth

MARGIN, ALPHA = 0.02, 0.05


def _windows(rng: np.random.Generator, runs: int, n: int, delta: float, disagreement: float) -> np.ndarray:
    """Paired differences new - old in {-1, 0, 1}: the models disagree on a share d of requests."""
    u = rng.random((runs, n))
    plus, minus = (disagreement + delta) / 2, (disagreement - delta) / 2
    return np.where(u < plus, 1.0, np.where(u < plus + minus, -1.0, 0.0))


def _rolled_back(x: np.ndarray, per_day: int) -> np.ndarray:
    """Whether the guard rolls back at any of the daily looks (after each day's labels)."""
    lw = log_wealth(x, -MARGIN)
    running_max = np.maximum.accumulate(lw, axis=-1)
    looks = running_max[:, per_day - 1 :: per_day]  # what each daily look sees
    return (looks >= math.log(1 / ALPHA)).any(axis=1)


@pytest.mark.parametrize("disagreement", [0.05, 0.12, 0.3])
def test_false_rollbacks_at_most_alpha_with_the_new_champion_exactly_at_the_margin(disagreement: float) -> None:
    """1,000 guard windows of 14 days x 200 labelled pairs, a look after every day's labels."""
    x = _windows(np.random.default_rng(int(disagreement * 100)), 1000, 14 * 200, -MARGIN, disagreement)
    rate = _rolled_back(x, 200).mean()
    assert rate <= ALPHA


def test_looking_after_every_single_label_is_still_valid() -> None:
    x = _windows(np.random.default_rng(3), 1000, 3000, -MARGIN, 0.12)
    every_row = (log_wealth(x, -MARGIN).max(axis=1) >= math.log(1 / ALPHA)).mean()
    assert every_row <= ALPHA


def test_a_naive_daily_z_test_would_roll_back_too_often() -> None:
    """The reference the anytime-valid test exists for: a one-sided z-test read every day."""
    x = _windows(np.random.default_rng(4), 1000, 14 * 200, -MARGIN, 0.12)
    n = np.arange(1, x.shape[1] + 1)
    mean = np.cumsum(x, axis=1) / n
    var = np.maximum(np.cumsum(x * x, axis=1) / n - mean**2, 1e-12)
    z = (mean + MARGIN) / np.sqrt(var / n)
    daily = z[:, 199::200]
    assert (daily < -1.645).any(axis=1).mean() > 1.5 * ALPHA


@pytest.mark.parametrize(("per_day", "disagreement", "power"), [(200, 0.10, 0.95), (200, 0.12, 0.95), (400, 0.15, 0.95),
                                                               (100, 0.08, 0.85)])
def test_at_least_95_percent_rolled_back_when_5_points_worse(per_day: int, disagreement: float, power: float) -> None:
    """14 days; 200 labelled pairs a day reach 95% while the models disagree on <= 12% of requests,
    400 a day up to 15% (docs/rollout.md has the table)."""
    x = _windows(np.random.default_rng(per_day + int(disagreement * 1000)), 1000, 14 * per_day, -0.05, disagreement)
    assert _rolled_back(x, per_day).mean() >= power


def test_guard_sequence_result() -> None:
    rng = np.random.default_rng(5)
    worse = _windows(rng, 1, 3000, -0.08, 0.12)[0]
    r = guard_sequence(worse, MARGIN, ALPHA)
    assert r.reject and r.n == 3000 and r.statistic >= math.log(20) and r.threshold == pytest.approx(math.log(20))
    assert r.bound < -MARGIN  # the anytime upper bound excludes "no worse than the margin"
    assert r.mean == pytest.approx(worse.mean())
    same = _windows(rng, 1, 3000, 0.0, 0.12)[0]
    ok = guard_sequence(same, MARGIN, ALPHA)
    assert not ok.reject and ok.bound > -MARGIN and ok.bound > ok.mean
    assert ok.to_dict()["reject"] is False
    empty = guard_sequence([], MARGIN, ALPHA)
    assert not empty.reject and empty.n == 0


def test_the_bound_is_consistent_with_the_test() -> None:
    x = _windows(np.random.default_rng(8), 1, 1500, -0.04, 0.12)[0]
    r = guard_sequence(x, MARGIN, ALPHA)
    # The test at m rejects exactly for nulls above the bound (up to the bisection's tolerance).
    lw_above = log_wealth(x, min(0.99, r.bound + 0.002)).max()
    lw_below = log_wealth(x, r.bound - 0.002).max()
    assert lw_above >= math.log(1 / ALPHA) > lw_below


def test_the_anytime_bound_covers_the_true_mean_at_every_time() -> None:
    x = _windows(np.random.default_rng(9), 200, 800, -0.03, 0.15)
    misses = 0
    for row in x:
        bounds_fail = log_wealth(row, -0.03 + 1e-9).max() >= math.log(1 / ALPHA)  # the truth was ever excluded
        misses += bounds_fail
    assert misses / len(x) <= ALPHA


def test_guard_sequence_says_what_is_wrong() -> None:
    with pytest.raises(StatisticsError, match=r"\[-1, 1\]"):
        guard_sequence([0.0, 2.0], MARGIN, ALPHA)
    with pytest.raises(StatisticsError, match="margin"):
        guard_sequence([0.0], -0.1, ALPHA)
    with pytest.raises(StatisticsError, match="alpha"):
        guard_sequence([0.0], MARGIN, 1.5)
