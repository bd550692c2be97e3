"""The demo's little world on disk: a warehouse table of labelled rows and a retrainer.yaml.

The demo and the flow tests share it, so the tests exercise exactly what a new user runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
import yaml

from retrainer.demo.data import FEATURES

WAREHOUSE_TABLE = "loans"

DEFAULT_TRIGGERS: tuple[dict[str, Any], ...] = (
    {"type": "performance", "window": "7d", "thresholds": {"accuracy": 0.85, "f1": 0.70}, "min_labels": 200},
    {"type": "drift", "window": "3d", "psi_threshold": 0.25},
    {"type": "schedule", "interval": "60d"},
)


def write_warehouse(url: str, frame: pd.DataFrame, *, table: str = WAREHOUSE_TABLE) -> int:
    """Append labelled rows (features, ``ts``, ``label``) to the training table; returns rows written."""
    columns = [f.name for f in FEATURES] + ["ts", "label"]
    rows = frame[columns].copy()
    rows["ts"] = pd.to_datetime(rows["ts"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            rows.to_sql(table, conn, if_exists="append", index=False)
    finally:
        engine.dispose()
    return len(rows)


def demo_config(
    *,
    model_name: str = "credit-default",
    rollout: Mapping[str, Any] | None = None,
    triggers: Sequence[Mapping[str, Any]] = DEFAULT_TRIGGERS,
    estimator: Mapping[str, Any] | None = None,
    policy: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    notifications: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A retrainer.yaml as a mapping; every path is relative to the directory it is written to."""
    return {
        "model": {"name": model_name, "description": "credit default (synthetic demo data)"},
        "store": {"url": "sqlite:///retrainer.db"},
        "mlflow": {"tracking_uri": "sqlite:///mlflow.db", "artifact_location": "mlartifacts"},
        "data": {
            "source": {"url": "sqlite:///warehouse.db", "table": WAREHOUSE_TABLE},
            "timestamp_column": "ts",
            "label_column": "label",
            "window": "21d",
            "holdout_fraction": 0.2,
            "min_rows": 300,
            "features": [f.model_dump() for f in FEATURES],
            **dict(data or {}),
        },
        "estimator": dict(estimator or {"class": "sklearn.ensemble.HistGradientBoostingClassifier",
                                        "params": {"max_iter": 60}}),
        "triggers": [dict(t) for t in triggers],
        "policy": dict(policy or {"mode": "any", "cooldown": "3d"}),
        "gate": {"metric": "f1", "min_ratio": 0.95},
        "rollout": dict(rollout or {"mode": "direct"}),
        **({"notifications": dict(notifications)} if notifications else {}),
    }


def write_config(workdir: Path, config: Mapping[str, Any], name: str = "retrainer.yaml") -> Path:
    """Write ``config`` as YAML into ``workdir``; relative paths in it resolve against ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / name
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False), encoding="utf-8")
    return path
