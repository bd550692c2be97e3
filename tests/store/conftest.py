from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from retrainer.config import FeatureSpec
from retrainer.store import PredictionRecord, Store

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
SPECS = [
    FeatureSpec(name="age", type="numeric"),
    FeatureSpec(name="income", type="numeric", nullable=True),
    FeatureSpec(name="city", type="categorical", nullable=True),
]


def record(i: int, *, minutes: float | None = None, **overrides: object) -> PredictionRecord:
    fields: dict[str, object] = {
        "request_id": f"req-{i}",
        "features": {"age": float(i), "income": 1000.0 + i, "city": ["a", "b", "c"][i % 3]},
        "prediction": float(i % 2),
        "ts": T0 + timedelta(minutes=i if minutes is None else minutes),
        "score": i / 1000,
        "model_version": "1",
    }
    fields.update(overrides)
    return PredictionRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("postgresql_url")


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store.open(store_url, max_batch=1000)
    s.init()
    yield s
    s.close()
