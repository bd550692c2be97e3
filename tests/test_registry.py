"""Registry and idempotent registration against a real MLflow (SQLite + local artifacts in a temp dir)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from retrainer.errors import RegistryError
from retrainer.registry import CHALLENGER, CHAMPION, IDEMPOTENCY_TAG, Registry
from retrainer.tasks import register as register_mod
from retrainer.tasks.register import REFERENCE_PROFILE_FILE, register_candidate, set_challenger
from retrainer.triggers.context import ChampionInfo

REPO = Path(__file__).resolve().parents[1]
WINDOW = (datetime(2025, 5, 1, tzinfo=timezone.utc), datetime(2025, 6, 1, tzinfo=timezone.utc))



@pytest.fixture(scope="module")
def mlflow_dir(new_mlflow_dir):
    """One MLflow database per module, in a temp dir: never inside the repo."""
    return new_mlflow_dir("mlflow")


@pytest.fixture
def registry(mlflow_dir):
    name = f"m-{uuid.uuid4().hex[:8]}"  # a fresh registered model per test, one shared database
    return Registry(
        f"sqlite:///{mlflow_dir / 'mlflow.db'}",
        model_name=name,
        artifact_location=mlflow_dir / "artifacts",
    )


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x1": rng.normal(size=200), "x2": rng.normal(size=200)})
    y = (X["x1"] + 0.3 * X["x2"] > 0).astype(int)
    return LogisticRegression().fit(X, y), X


def _register(registry, model, X, key, **kw):
    args = dict(
        registry=registry,
        idempotency_key=key,
        metrics={"candidate_f1": 0.9, "champion_f1": 0.85},
        reasons=["drift: psi 0.31 > 0.2"],
        data_window=WINDOW,
        flow_run_id="flow-123",
        input_example=X.head(5),
        reference_profile={"features": {"x1": {"mean": 0.0}}},
        extra_artifacts={},
    )
    args.update(kw)
    return register_candidate(model, **args)


def test_register_twice_with_one_key_gives_one_version(registry, fitted):
    model, X = fitted
    first = _register(registry, model, X, "key-1")
    again = _register(registry, model, X, "key-1")
    assert first.created is True and again.created is False
    assert again.version == first.version == "1" and again.run_id == first.run_id
    assert len(registry.client.search_model_versions(f"name = '{registry.model_name}'")) == 1
    assert registry.version_for_key("key-1") == "1"
    assert registry.version_for_key("key-2") is None


def test_registering_shows_no_unsafe_loading_advice(registry, fitted):
    """MLflow validates the input example by loading the model, which retrainer refuses (pickle
    off); its warning would tell the user to allow unsafe loading. It is not shown; the example
    is still stored with the version."""
    import logging

    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("mlflow.models.model")
    logger.addHandler(handler)
    try:
        model, X = fitted
        rv = _register(registry, model, X, "key-quiet")
    finally:
        logger.removeHandler(handler)
    assert not [m for m in seen if "serving input example" in m or "PICKLE" in m], seen
    from mlflow.models import Model

    with registry.activated():
        info = Model.load(f"models:/{registry.model_name}/{rv.version}")
    assert info.saved_input_example_info is not None  # the example is kept


def test_different_keys_give_two_versions_with_tags(registry, fitted, tmp_path):
    model, X = fitted
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    a = _register(registry, model, X, "key-a")
    b = _register(registry, model, X, "key-b", extra_artifacts={"notes": notes}, params={"C": 1.0})
    assert (a.version, b.version) == ("1", "2") and a.run_id != b.run_id
    mv = registry.get_version(b.version)
    assert mv.tags[IDEMPOTENCY_TAG] == "key-b"
    assert json.loads(mv.tags["retrainer.trigger_reasons"]) == ["drift: psi 0.31 > 0.2"]
    assert mv.tags["retrainer.data_window_start"] == WINDOW[0].isoformat()
    assert mv.tags["retrainer.data_window_end"] == WINDOW[1].isoformat()
    assert mv.tags["retrainer.flow_run_id"] == "flow-123"
    run = registry.client.get_run(b.run_id)
    assert run.data.metrics == {"candidate_f1": 0.9, "champion_f1": 0.85}
    assert run.data.params == {"C": "1.0"}
    assert run.data.tags[IDEMPOTENCY_TAG] == "key-b"
    assert run.info.status == "FINISHED"
    profile = registry.client.download_artifacts(b.run_id, REFERENCE_PROFILE_FILE, str(tmp_path))
    assert json.loads(Path(profile).read_text()) == {"features": {"x1": {"mean": 0.0}}}
    notes_back = registry.client.download_artifacts(b.run_id, "notes/notes.txt", str(tmp_path / "dl"))
    assert Path(notes_back).read_text() == "hello"
    # The artifacts live under the configured artifact location (temp), not the working directory.
    assert str(registry.artifact_location) in registry.client.get_experiment(run.info.experiment_id).artifact_location or (
        Path(registry.artifact_location).as_uri() in registry.client.get_experiment(run.info.experiment_id).artifact_location
    )


def test_crash_after_logging_before_registering_does_not_duplicate(registry, fitted, monkeypatch):
    model, X = fitted
    real = registry.client.create_model_version
    calls = {"n": 0}

    def crash_once(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("registry went away")
        return real(*a, **kw)

    monkeypatch.setattr(registry.client, "create_model_version", crash_once)
    logged = {"n": 0}
    real_log = register_mod._log_run

    def count_log(*a, **kw):
        logged["n"] += 1
        return real_log(*a, **kw)

    monkeypatch.setattr(register_mod, "_log_run", count_log)
    with pytest.raises(ConnectionError):
        _register(registry, model, X, "key-crash")
    result = _register(registry, model, X, "key-crash")
    assert result.created is True and result.version == "1"
    assert logged["n"] == 1  # the retry registered the model logged by the first attempt
    assert len(registry.client.search_model_versions(f"name = '{registry.model_name}'")) == 1
    assert _register(registry, model, X, "key-crash").created is False


def test_aliases_champion_info_and_load_back(registry, fitted):
    model, X = fitted
    assert registry.champion() is None and registry.challenger() is None
    v = _register(registry, model, X, "key-load").version
    set_challenger(registry, v)
    info = registry.challenger()
    assert isinstance(info, ChampionInfo)
    assert info.version == v and info.run_id is not None
    assert info.created_at.tzinfo is not None and abs(info.created_at - datetime.now(timezone.utc)) < timedelta(minutes=5)
    assert info.tags[IDEMPOTENCY_TAG] == "key-load"
    registry.set_alias(CHAMPION, v)
    assert registry.champion().version == v
    loaded = registry.load_model(CHALLENGER)
    np.testing.assert_array_equal(loaded.predict(X.head(20)), model.predict(X.head(20)))
    sk = registry.load_model(v, flavor="sklearn")
    np.testing.assert_allclose(sk.predict_proba(X.head(5)), model.predict_proba(X.head(5)))
    assert registry.delete_alias(CHALLENGER) is True
    assert registry.delete_alias(CHALLENGER) is False
    assert registry.challenger() is None


@pytest.mark.parametrize(
    "ref",
    ["/tmp/model.pkl", "runs:/abc/model", "models:/other@champion", "../x", "s3://bucket/model", "file:///etc", "latest"],
)
def test_nothing_outside_the_configured_registry_can_be_loaded(registry, ref):
    with pytest.raises(RegistryError):
        registry.load_model(ref)


def test_model_uris_name_only_the_configured_model(registry):
    assert registry.model_uri("champion") == f"models:/{registry.model_name}@champion"
    assert registry.model_uri(3) == f"models:/{registry.model_name}/3"


def test_missing_alias_and_version_are_registry_errors(registry, fitted):
    model, X = fitted
    _register(registry, model, X, "key-m")
    with pytest.raises(RegistryError, match="no alias 'champion'"):
        registry.load_model(CHAMPION)
    with pytest.raises(RegistryError, match="no version 9"):
        registry.set_alias(CHAMPION, "9")


def test_bad_idempotency_key_is_refused(registry, fitted):
    model, X = fitted
    with pytest.raises(RegistryError, match="idempotency key"):
        _register(registry, model, X, "x' or '1'='1")


def test_ensure_experiment_is_idempotent(registry, mlflow_dir):
    a = registry.ensure_experiment()
    assert registry.ensure_experiment() == a
    exp = registry.client.get_experiment(a)
    assert exp.name == f"retrainer/{registry.model_name}"
    assert exp.artifact_location == (mlflow_dir / "artifacts").resolve().as_uri()
