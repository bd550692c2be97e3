"""Nothing from the registry is ever unpickled: a version whose artifact would run code is refused
unread on every path that loads or stages a model, and the payload's marker never appears."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

from retrainer.config import RetrainerConfig
from retrainer.deployments.rollout import promotion, stages as rollout
from retrainer.deployments.serving.router import registry_loader
from retrainer.errors import RegistryError, UnsafeModelError
from retrainer.model_safety import TrustPolicy
from retrainer.registry import CHAMPION, Registry
from retrainer.store import Store
from retrainer.tasks.register import register_candidate

WINDOW = (datetime(2025, 5, 1, tzinfo=timezone.utc), datetime(2025, 6, 1, tzinfo=timezone.utc))
MARKER = Path("/tmp") / f"retrainer-pwned-{uuid.uuid4().hex}"


def _payload(path: str) -> None:  # what an attacker's pickle would run
    Path(path).write_text("pwned")


class EvilModel(LogisticRegression):
    def __reduce__(self):  # type: ignore[override]
        return (_payload, (str(MARKER),))


class TrustedLookingScaler(LogisticRegression):
    """A type outside the allow-list, that the artifact itself declares trusted."""


def _config(name: str, **extra: object) -> RetrainerConfig:
    features = [{"name": "x1", "type": "numeric"}, {"name": "x2", "type": "numeric"}]
    return RetrainerConfig.model_validate({"model": {"name": name}, "data": {"features": features}, **extra})


@pytest.fixture(scope="module")
def world(new_mlflow_dir, tmp_path_factory):
    root = new_mlflow_dir("safety")
    name = f"safe-{uuid.uuid4().hex[:6]}"
    registry = Registry(f"sqlite:///{root / 'mlflow.db'}", model_name=name, artifact_location=root / "artifacts")
    X = pd.DataFrame({"x1": np.linspace(-1, 1, 40), "x2": np.linspace(1, -1, 40) ** 2})
    y = (X.x1 > 0).astype(int)
    good = register_candidate(LogisticRegression().fit(X, y), registry=registry, idempotency_key="good",
                              metrics={"candidate_f1": 0.9}, reasons=["t"], data_window=WINDOW, flow_run_id=None,
                              input_example=X.head(5)).version
    evil = EvilModel().fit(X, y)
    odd = TrustedLookingScaler().fit(X, y)
    with registry.activated():
        experiment = registry.ensure_experiment()  # its artifacts in the temp dir, never ./mlruns
        with mlflow.start_run(experiment_id=experiment):
            mlflow.sklearn.log_model(evil, name="model", serialization_format="pickle",
                                     registered_model_name=name)
        with mlflow.start_run(experiment_id=experiment):
            mlflow.sklearn.log_model(odd, name="model", serialization_format="skops",
                                     skops_trusted_types=[f"{__name__}.TrustedLookingScaler"],
                                     registered_model_name=name)
    pickled, untrusted = str(int(good) + 1), str(int(good) + 2)
    assert not MARKER.exists()
    registry.set_alias(CHAMPION, good)
    store = Store.open(f"sqlite:///{tmp_path_factory.mktemp('safety-store') / 'store.db'}")
    store.init()
    store.champion_cas(name, None, good)
    cfg = _config(name)
    yield registry, store, cfg, good, pickled, untrusted
    store.close()
    assert not MARKER.exists()


def test_a_safe_version_loads_in_both_flavors(world) -> None:
    registry, _, _, good, _, _ = world
    X = pd.DataFrame({"x1": [0.5, -0.5], "x2": [0.1, 0.2]})
    assert registry.load_model(good).predict(X).tolist() == [1, 0]
    assert hasattr(registry.load_model(good, flavor="sklearn"), "predict_proba")
    assert registry.check_loadable(CHAMPION) == good


@pytest.mark.parametrize("which", ["pickled", "untrusted"])
def test_every_loading_path_refuses_unread(world, which: str) -> None:
    registry, store, cfg, good, pickled, untrusted = world
    version = pickled if which == "pickled" else untrusted
    expect = "not skops" if which == "pickled" else "does not trust: .*TrustedLookingScaler"
    for flavor in ("pyfunc", "sklearn"):  # serving reload, the retrain flow's champion load
        with pytest.raises(UnsafeModelError, match=expect):
            registry.load_model(version, flavor=flavor)
    with pytest.raises(UnsafeModelError, match=expect):
        registry_loader(registry, [])(version)
    with pytest.raises(UnsafeModelError, match=expect):
        promotion.promote(registry, store, version=version, expected_champion=good, actor="t", reason="t")
    with pytest.raises(UnsafeModelError, match=expect):
        rollout.start_shadow(cfg, store, registry, version=version, actor="t")
    with pytest.raises(UnsafeModelError, match=expect):
        rollout.start_ab(cfg, store, registry, challenger=version, actor="t")
    assert store.champion(registry.model_name) == good  # nothing moved
    assert [e.action for e in store.ledger(registry.model_name)] == []
    assert not MARKER.exists()


def test_the_trust_list_comes_from_config_not_the_artifact(world, tmp_path: Path) -> None:
    registry, _, _, _, _, untrusted = world
    trusting = Registry(registry.tracking_uri, model_name=registry.model_name,
                        trust=TrustPolicy.for_estimator(None, [f"{__name__}.TrustedLookingScaler"]))
    assert trusting.load_model(untrusted, flavor="sklearn").__class__ is TrustedLookingScaler
    cfg = _config("m", estimator={"class": "lightgbm.LGBMClassifier", "trusted_types": ["x.Y"]},
                  mlflow={"tracking_uri": f"sqlite:///{tmp_path / 'm.db'}"})
    policy = Registry.from_config(cfg).trust
    assert "lightgbm." in policy.prefixes and "sklearn." in policy.prefixes and policy.types == {"x.Y"}


def test_bundled_code_and_foreign_loaders_are_refused(tmp_path: Path) -> None:
    from retrainer.model_safety import check_mlmodel

    (tmp_path / "model.skops").write_bytes(b"")
    base = {"flavors": {"sklearn": {"serialization_format": "skops", "pickled_model": "model.skops"},
                        "python_function": {"loader_module": "mlflow.sklearn", "model_path": "model.skops"}}}
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(base))
    assert check_mlmodel(tmp_path, "v") == (tmp_path / "model.skops").resolve()
    for edit in (
        lambda m: m["flavors"]["python_function"].update(loader_module="evil_loader"),
        lambda m: m["flavors"]["python_function"].update(code="code"),
        lambda m: m["flavors"]["sklearn"].update(pickled_model="../../etc/passwd"),
        lambda m: m["flavors"].pop("sklearn"),
    ):
        meta = yaml.safe_load(yaml.safe_dump(base))
        edit(meta)
        (tmp_path / "MLmodel").write_text(yaml.safe_dump(meta))
        with pytest.raises(UnsafeModelError):
            check_mlmodel(tmp_path, "v")


def test_mlflow_pickle_switch_is_off_in_retrainer_processes() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    out = subprocess.run([sys.executable, "-c", "import retrainer, os; print(os.environ['MLFLOW_ALLOW_PICKLE_DESERIALIZATION'])"],
                         env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert out == "false"
    assert issubclass(UnsafeModelError, RegistryError)
