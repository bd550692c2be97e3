"""backtest: no look-ahead, cooldown and hysteresis carried through the replay, the plot."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from retrainer.config import FeatureSpec, parse_config
from retrainer.profiles import build_reference_profile
from retrainer.testing import InMemoryWindowSource
from retrainer.triggers.backtest import backtest
from retrainer.triggers.plot import plot_backtest

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
SPECS = [FeatureSpec(name="x"), FeatureSpec(name="seg", type="categorical")]


def cfg(triggers, **policy):
    return parse_config({"model": {"name": "m"}, "data": {"features": [s.model_dump() for s in SPECS]},
                         "triggers": triggers, "policy": policy})


def log(days, *, drift_from=None, seed=0, per_day=400):
    """Hourly-ish predictions; from ``drift_from`` on, x shifts and the model is always wrong.
    Labels arrive one day after the prediction."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    ts = pd.Timestamp(T0) + pd.to_timedelta(np.linspace(0, days * 86400, n, endpoint=False), unit="s")
    late = np.asarray(ts >= pd.Timestamp(drift_from)) if drift_from else np.zeros(n, bool)
    y = rng.integers(0, 2, n)
    return pd.DataFrame({
        "ts": ts, "x": rng.normal(size=n) + np.where(late, 2.0, 0.0),
        "seg": rng.choice(["a", "b"], n), "y_true": y, "y_pred": np.where(late, 1 - y, y),
        "score": np.where(late, 1 - y, y).astype(float), "labelled_at": ts + pd.Timedelta(days=1),
    })


@pytest.fixture(scope="module")
def profile():
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"x": rng.normal(size=5000), "seg": rng.choice(["a", "b"], 5000)})
    return build_reference_profile(train, SPECS, registered_at=T0)


TRIGGERS = [{"type": "drift", "window": "1d", "min_samples": 100},
            {"type": "performance", "window": "3d", "min_labels": 100, "thresholds": {"accuracy": 0.8}}]


def test_no_look_ahead_data_after_a_step_does_not_change_it(profile):
    """The future log drifts from T on, hard enough that a step one day later fires; at T and
    before, every trigger's decision equals the decision on a log that never drifts."""
    t = T0 + timedelta(days=6, hours=12)
    clean, future = InMemoryWindowSource(log(10)), InMemoryWindowSource(log(10, drift_from=t))
    run = dict(start=T0 + timedelta(days=2), end=T0 + timedelta(days=9), every=timedelta(hours=12),
               reference=profile, last_retrain_at=T0)
    a = backtest(cfg(TRIGGERS, cooldown="0s"), store=clean, **run)
    b = backtest(cfg(TRIGGERS, cooldown="0s"), store=future, **run)
    for sa, sb in zip(a.steps, b.steps):
        if sa.at <= t:
            assert sa.children == sb.children, sa.at  # values, statuses, evidence: identical
    assert not any(s.should_retrain for s in a.steps)
    after = {s.at: s for s in b.steps}
    assert after[t + timedelta(days=1)].should_retrain  # the future data does matter once it is the past
    # Labels of predictions made before T arrive a day later: at T + 12h performance still cannot see them.
    assert not {d.trigger: d for d in after[t + timedelta(hours=12)].children}["performance"].fired


def test_cooldown_and_simulated_retrains_in_replay(profile):
    src = InMemoryWindowSource(log(12))
    triggers = [{"type": "data_volume", "min_samples": 1, "lookback": "30d"}]
    r = backtest(cfg(triggers, cooldown="3d"), store=src, start=T0 + timedelta(days=1), end=T0 + timedelta(days=11),
                 every=timedelta(days=1), reference=profile)
    assert [(f - T0).days for f in r.fires] == [1, 4, 7, 10]
    step = {(s.at - T0).days: s for s in r.steps}
    assert step[2].raw_fired and not step[2].should_retrain  # suppressed by the cooldown
    assert step[5].last_retrain_at == T0 + timedelta(days=4)  # a simulated retrain resets it
    # data_volume counts only rows since the simulated retrain (labels arrive a day late).
    assert step[6].last_retrain_at == T0 + timedelta(days=4)
    assert step[6].children[0].value == pytest.approx(400, abs=2)


def test_schedule_replays_from_simulated_retrains():
    r = backtest(cfg([{"type": "schedule", "interval": "7d"}], cooldown="0s"), store=InMemoryWindowSource(log(1)),
                 start=T0, end=T0 + timedelta(days=20), every=timedelta(days=1), last_retrain_at=T0 - timedelta(days=3))
    assert [(f - T0).days for f in r.fires] == [4, 11, 18]


def test_hysteresis_history_carried(profile):
    src = InMemoryWindowSource(log(8))
    triggers = [{"type": "data_volume", "min_samples": 1, "lookback": "30d"}]
    r = backtest(cfg(triggers, cooldown="0s", consecutive=3), store=src, start=T0 + timedelta(days=1),
                 end=T0 + timedelta(days=5), every=timedelta(days=1), reference=profile)
    assert [(f - T0).days for f in r.fires] == [3, 4, 5]
    assert r.to_dict()["fires"][0] == (T0 + timedelta(days=3)).isoformat()


def test_plot_writes_a_png(profile, tmp_path):
    r = backtest(cfg(TRIGGERS + [{"type": "schedule", "interval": "3d"}], cooldown="1d"),
                 store=InMemoryWindowSource(log(10, drift_from=T0 + timedelta(days=6))),
                 start=T0 + timedelta(days=1), end=T0 + timedelta(days=10), every=timedelta(hours=12),
                 reference=profile, last_retrain_at=T0)
    out = tmp_path / "backtest.png"
    plot_backtest(r, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
