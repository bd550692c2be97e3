from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from retrainer.config import FeatureSpec
from retrainer.profiles import build_reference_profile
from retrainer.store import Store

T0 = datetime(2025, 6, 1, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=6)
SPECS = [FeatureSpec(name="x"), FeatureSpec(name="z"), FeatureSpec(name="c", type="categorical")]
TRIGGERS = [{"type": "drift", "window": "6h", "statistic": "pvalue", "min_samples": 200}]


def add_model(store: Store, name: str, *, shift: float = 0.0, rows: int = 1500, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    train = pd.DataFrame({"x": rng.normal(size=4000), "z": rng.lognormal(size=4000), "c": rng.choice(list("abc"), 4000)})
    store.save_reference_profile(name, "1", build_reference_profile(train, SPECS, model_version="1",
                                                                    registered_at=T0 - timedelta(days=1)))
    store.champion_cas(name, None, "1")
    store.log_prediction_frame(name, pd.DataFrame({
        "request_id": [f"{name}-{i}" for i in range(rows)],
        "ts": pd.Timestamp(T0) + pd.to_timedelta(np.sort(rng.uniform(0, 6 * 3600 - 1, rows)), unit="s"),
        "prediction": 0.0, "x": rng.normal(shift, 1, rows), "z": rng.lognormal(size=rows), "c": rng.choice(list("abc"), rows),
    }), SPECS)


@pytest.fixture
def fleet_store(tmp_path: Path) -> tuple[str, Store]:
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    store = Store.open(url)
    store.init()
    add_model(store, "a", seed=1)
    add_model(store, "b", shift=1.0, seed=2)
    add_model(store, "c", seed=3)
    yield url, store
    store.close()


def write_fleet(path: Path, url: str, models: list[dict], *, discover: bool = False, **fleet: object) -> Path:
    path.write_text(yaml.safe_dump({
        "fleet": {"name": "test", "batch_size": 2, "discover": discover, **fleet},
        "template": {"store": {"url": url}, "data": {"features": [s.model_dump() for s in SPECS]}, "triggers": TRIGGERS},
        "models": models,
    }))
    return path
