"""performance with its defaults at 10 labelled predictions a day (issue 21's figures).

Floors are the defaults (accuracy 0.85, f1 0.70); labels are balanced and errors symmetric, so
f1 tracks accuracy and the accuracy floor is the one that decides. Checks run daily.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from retrainer.stats.floor import cut_below, min_samples_for
from retrainer.testing import InMemoryWindowSource
from retrainer.triggers.context import ChampionInfo, TriggerContext
from retrainer.triggers.performance import PerformanceTrigger

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
PER_DAY = 10


def stream(accuracies: list[float], rng: np.random.Generator) -> pd.DataFrame:
    """One day per entry of ``accuracies``, PER_DAY labelled predictions a day (labels within the hour)."""
    acc = np.repeat(accuracies, PER_DAY)
    n = acc.size
    ts = pd.Timestamp(T0) + pd.to_timedelta((np.arange(n) + rng.random(n)) * 86400 / PER_DAY, unit="s")
    y = rng.integers(0, 2, n).astype(float)
    pred = np.where(rng.random(n) < acc, y, 1 - y)
    return pd.DataFrame({"ts": ts, "y_true": y, "y_pred": pred, "score": np.where(pred == 1, 0.8, 0.2),
                         "labelled_at": ts + pd.Timedelta(minutes=30)})


def check(frame: pd.DataFrame, day: int):
    ctx = TriggerContext(model_name="m", now=T0 + timedelta(days=day), source=InMemoryWindowSource(frame),
                         champion=ChampionInfo("v1", created_at=T0))
    return PerformanceTrigger().evaluate(ctx)


def test_a_model_5_points_above_its_floor_fires_in_at_most_1pct_of_1000_windows():
    rng = np.random.default_rng(21)
    fired = sum(check(stream([0.90] * 20, rng), 20).fired for _ in range(1000))
    assert fired <= 10, f"{fired} of 1000 windows fired"


def test_a_model_5_points_below_its_floor_is_caught_within_14_days():
    rng = np.random.default_rng(7)
    days_to_fire = []
    for _ in range(100):
        frame = stream([0.90] * 30 + [0.80] * 21, rng)
        first = next((d for d in range(1, 22) if check(frame, 30 + d).fired), None)
        days_to_fire.append(first if first is not None else 99)
    within = np.mean(np.asarray(days_to_fire) <= 14)
    print(f"fired within 14 days in {within:.0%}; median {np.median(days_to_fire)} days; "
          f"within 21 days {np.mean(np.asarray(days_to_fire) <= 21):.0%}")
    assert within >= 0.80 and np.median(days_to_fire) <= 14
    assert np.mean(np.asarray(days_to_fire) <= 21) >= 0.97


def test_the_default_sample_size_and_cut_are_the_stated_bounds():
    # 147 labels for accuracy 0.85: P(fire | 0.90) <= 1% exactly (binomial), P(fire | 0.80) >= 90%.
    from scipy.stats import binom

    n = min_samples_for(0.85)
    cut = cut_below(0.85, n)
    fire_below = int(np.ceil(cut * n)) - 1  # fire when correct <= this
    assert n == 147 and binom.cdf(fire_below, n, 0.90) <= 0.01 < binom.cdf(fire_below + 1, n, 0.90)
    assert binom.cdf(fire_below, n, 0.80) >= 0.84  # 90% by the normal approximation; the exact cut is conservative
    # Brute force over the rule itself: simulate 200,000 windows.
    rng = np.random.default_rng(0)
    assert np.mean(rng.binomial(n, 0.90, 200_000) / n < cut) <= 0.01
