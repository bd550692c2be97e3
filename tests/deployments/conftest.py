"""Serving fixtures: a real MLflow registry with three tiny sklearn versions and a SQLite store."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_env import WINDOW, Env, make_data, make_model

from retrainer.registry import CHAMPION, Registry
from retrainer.store import Store


@pytest.fixture(scope="session")
def env(tmp_path_factory: pytest.TempPathFactory, mlflow_db_template: Path) -> Env:
    """One registered model with versions 1 (champion), 2 and 3 (different fits)."""
    from retrainer.tasks.register import register_candidate

    root = tmp_path_factory.mktemp("serving-mlflow")
    shutil.copy(mlflow_db_template, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    registry = Registry(uri, model_name="served-model", artifact_location=root / "artifacts")
    versions = []
    X, _ = make_data(20)
    for i, (C, shift) in enumerate(((1.0, 0.0), (0.1, 1.0), (10.0, -1.0))):
        rv = register_candidate(
            make_model(C, seed=i, intercept=shift), registry=registry, idempotency_key=f"serve-test-{i}",
            metrics={"candidate_f1": 0.9}, reasons=["test"], data_window=WINDOW, flow_run_id=None,
            input_example=X[["x1", "x2"]].head(5),
        )
        versions.append(rv.version)
    registry.set_alias(CHAMPION, versions[0])
    return Env(root, registry, versions, uri)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    s.init()
    yield s
    s.close()


