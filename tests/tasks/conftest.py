from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)


def make_frame(n: int = 300, *, seed: int = 0, start: datetime = NOW - timedelta(days=30)) -> pd.DataFrame:
    """A learnable binary problem: label depends on x1 and the colour."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    logit = 2.0 * x1 + np.where(colour == "red", 1.5, -0.5)
    label = (logit + rng.normal(scale=0.5, size=n) > 0).astype(int)
    ts = [start + timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 30 * 24 * 60, size=n))]
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "ts": ts, "label": label})


@pytest.fixture
def training_db(tmp_path):
    """A temp SQLite database with a `training` table of 300 rows inside the last 30 days."""
    url = f"sqlite:///{tmp_path / 'training.db'}"
    engine = sa.create_engine(url)
    frame = make_frame()
    frame.to_sql("training", engine, index=False)
    engine.dispose()
    return url, frame


@pytest.fixture
def data_cfg_dict(training_db):
    url, _ = training_db
    return {
        "source": {"url": url, "table": "training"},
        "features": [{"name": "x1"}, {"name": "x2"}, {"name": "colour", "type": "categorical"}],
        "holdout_fraction": 0.2,
        "min_rows": 50,
    }
