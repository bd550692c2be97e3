"""integration_test against a model registered in a temp MLflow (SQLite + local artifacts)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from retrainer.config import EstimatorConfig, FeatureSpec
from retrainer.errors import RegistryError
from retrainer.registry import CHALLENGER, Registry
from retrainer.tasks.integration import LatencyRule, integration_test
from retrainer.tasks.register import register_candidate, set_challenger
from retrainer.tasks.train import build_estimator

WINDOW = (datetime(2025, 5, 1, tzinfo=timezone.utc), datetime(2025, 6, 1, tzinfo=timezone.utc))
FEATURES = [FeatureSpec(name="x1"), FeatureSpec(name="colour", type="categorical")]



@pytest.fixture(scope="module")
def staged(new_mlflow_dir):
    root = new_mlflow_dir("mlflow-integration")
    registry = Registry(
        f"sqlite:///{root / 'mlflow.db'}", model_name=f"i-{uuid.uuid4().hex[:8]}", artifact_location=root / "artifacts"
    )
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x1": rng.normal(size=200), "colour": rng.choice(["red", "blue"], size=200).astype(object)})
    y = ((X["x1"] > 0) | (X["colour"] == "red")).astype(int)
    model = build_estimator(EstimatorConfig.model_validate({"class": "sklearn.linear_model.LogisticRegression"}), FEATURES)
    model.fit(X, y)
    registered = register_candidate(
        model,
        registry=registry,
        idempotency_key="integration-1",
        metrics={},
        reasons=["schedule"],
        data_window=WINDOW,
        flow_run_id=None,
        input_example=X.head(5),
    )
    set_challenger(registry, registered.version)
    return registry, registered.version, X


def test_a_good_challenger_passes_every_check(staged):
    registry, version, X = staged
    report = integration_test(registry, CHALLENGER, X.head(30))
    assert report.passed and report.model_uri == f"models:/{registry.model_name}@challenger"
    by_name = {c.name: c for c in report.checks}
    assert set(by_name) == {"load", "signature", "predict", "finite", "labels", "probabilities", "latency"}
    assert all(c.passed for c in report.checks), report.failures
    assert "['x1', 'colour']" in by_name["signature"].detail


def test_a_sample_missing_a_column_fails_with_what_failed(staged):
    registry, version, X = staged
    with pytest.raises(RegistryError, match="signature: the sample lacks signature column"):
        integration_test(registry, version, X[["x1"]].head(10))


def test_an_impossible_latency_budget_fails(staged):
    registry, version, X = staged
    report = integration_test(
        registry, version, X.head(10), latency=LatencyRule(budget_ms=1e-6), latency_repeats=5, raise_on_failure=False
    )
    assert not report.passed and [c.name for c in report.failures] == ["latency"]
    with pytest.raises(RegistryError, match="latency: p95 .* budget"):
        integration_test(registry, version, X.head(10), latency=LatencyRule(budget_ms=1e-6), latency_repeats=5)


def test_unknown_labels_fail(staged):
    registry, version, X = staged
    report = integration_test(registry, version, X.head(10), labels=[7, 8], raise_on_failure=False)
    assert [c.name for c in report.failures] == ["labels"]


def test_a_missing_alias_fails_the_load_check(staged):
    registry, _, X = staged
    report = integration_test(registry, "champion", X.head(5), raise_on_failure=False)
    assert not report.passed and report.failures[0].name == "load" and "no alias 'champion'" in report.failures[0].detail


def test_latency_is_judged_against_the_champion_as_a_ratio(staged):
    """A challenger as fast as the champion passes; one far slower fails the ratio, named in the detail."""
    registry, version, X = staged
    same = integration_test(registry, version, X.head(20), champion=version, raise_on_failure=False)
    assert same.passed, same.failures
    slow_cfg = {"class": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 400, "n_jobs": 1}}
    slow = build_estimator(EstimatorConfig.model_validate(slow_cfg), FEATURES)
    y = ((X["x1"] > 0) | (X["colour"] == "red")).astype(int)
    slow.fit(X, y)
    slow_version = register_candidate(
        slow, registry=registry, idempotency_key="integration-slow", metrics={}, reasons=["t"], data_window=WINDOW,
        flow_run_id=None, input_example=X.head(5),
    ).version
    fast = integration_test(registry, version, X.head(20), champion=slow_version, latency_repeats=20, raise_on_failure=False)
    assert fast.passed  # faster than the champion: fine
    report = integration_test(registry, slow_version, X.head(20), champion=version, latency_repeats=20,
                              latency=LatencyRule(ratio=1.5, slack_ms=2.0), raise_on_failure=False)
    latency = next(c for c in report.checks if c.name == "latency")
    assert not latency.passed and "x champion" in latency.detail, latency.detail
