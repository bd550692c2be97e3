"""A small drifting stream and a config that trains a fast model on it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from retrainer.config import parse_config

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
DAYS = 240
PER_DAY = 24


def stream(days: int = DAYS, per_day: int = PER_DAY, seed: int = 3) -> pd.DataFrame:
    """Hourly rows; the boundary on x1 rotates slowly and flips sign on day 120, and x2 shifts:
    an old model decays, a fresh one wins back."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    ts = pd.Timestamp(T0) + pd.to_timedelta(np.arange(n) * (86400 / per_day), unit="s")
    day = np.arange(n) / per_day
    x1, x2 = rng.normal(size=n), rng.normal(size=n) + day / 80
    angle = day / 60 + np.where(day >= 120, np.pi, 0.0)
    y = ((np.cos(angle) * x1 + np.sin(angle) * (x2 - day / 80) + rng.normal(0, 0.4, n)) > 0).astype(float)
    seg = np.where(rng.random(n) < 0.5 + 0.3 * (day > 150), "a", "b")
    return pd.DataFrame({"ts": ts, "x1": x1, "x2": x2, "seg": seg, "label": y})


def make_cfg(**over):
    data = {
        "model": {"name": "sim"},
        "data": {"source": {"table": "rows"}, "timestamp_column": "ts", "label_column": "label",
                 "features": [{"name": "x1"}, {"name": "x2"}, {"name": "seg", "type": "categorical"}],
                 "window": "30d", "min_rows": 50},
        "estimator": {"class": "sklearn.linear_model.LogisticRegression"},
        "triggers": [
            {"type": "performance", "window": "7d", "min_labels": 50, "thresholds": {"accuracy": 0.8}},
            {"type": "drift", "window": "7d", "psi_threshold": 0.2, "min_samples": 50},
        ],
        "policy": {"cooldown": "7d"},
    }
    data.update(over)
    return parse_config(data)


@pytest.fixture
def frame() -> pd.DataFrame:
    return stream()


@pytest.fixture
def cfg():
    return make_cfg()


def at(day: float) -> datetime:
    return T0 + timedelta(days=day)
