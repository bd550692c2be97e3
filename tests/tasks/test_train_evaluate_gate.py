from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from retrainer.config import DataConfig, EstimatorConfig, FeatureSpec, GateConfig
from retrainer.errors import ConfigError
from retrainer.tasks.evaluate import evaluate_model
from retrainer.tasks.gate import gate
from retrainer.tasks.load import load_training_data
from retrainer.tasks.train import build_estimator, train_model

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
FEATURES = [FeatureSpec(name="x1"), FeatureSpec(name="x2"), FeatureSpec(name="colour", type="categorical")]


@pytest.fixture
def data(data_cfg_dict):
    return load_training_data(DataConfig.model_validate(data_cfg_dict), now=NOW)


def test_categorical_features_get_a_one_hot_pipeline():
    est = build_estimator(EstimatorConfig.model_validate({"class": "sklearn.linear_model.LogisticRegression"}), FEATURES)
    assert isinstance(est, Pipeline)
    encode = est.named_steps["encode"]
    assert isinstance(encode, ColumnTransformer)
    cat = dict((name, (tr, cols)) for name, tr, cols in encode.transformers)
    assert isinstance(cat["categorical"][0], OneHotEncoder) and cat["categorical"][1] == ["colour"]
    assert cat["categorical"][0].handle_unknown == "ignore"
    assert cat["numeric"] == ("passthrough", ["x1", "x2"])
    assert isinstance(est.named_steps["model"], LogisticRegression)


def test_numeric_only_is_the_bare_estimator_seeded():
    cfg = EstimatorConfig.model_validate({"class": "sklearn.ensemble.RandomForestClassifier", "params": {"n_estimators": 5}})
    est = build_estimator(cfg, [FeatureSpec(name="x1")])
    assert type(est).__name__ == "RandomForestClassifier"
    assert est.n_estimators == 5 and est.random_state == 0
    explicit = build_estimator(cfg.model_copy(update={"params": {"random_state": 42}}), [FeatureSpec(name="x1")])
    assert explicit.random_state == 42


def test_a_configured_pipeline_is_not_wrapped_again():
    cfg = EstimatorConfig.model_validate(
        {"class": "sklearn.pipeline.Pipeline", "params": {"steps": [("m", LogisticRegression())]}}
    )
    est = build_estimator(cfg, FEATURES)
    assert [name for name, _ in est.steps] == ["m"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nosuchpkg.Model", "cannot be imported"),
        ("sklearn.linear_model.NoSuchModel", "has no attribute 'NoSuchModel'"),
        ("sklearn.linear_model.lasso_path", "not a class"),
        ("collections.OrderedDict", "lacks fit, predict"),
    ],
)
def test_bad_estimator_class_is_a_config_error(path, message):
    with pytest.raises(ConfigError, match=message):
        build_estimator(EstimatorConfig.model_validate({"class": path}), FEATURES)


def test_bad_params_are_a_config_error():
    cfg = EstimatorConfig.model_validate({"class": "sklearn.linear_model.LogisticRegression", "params": {"nope": 1}})
    with pytest.raises(ConfigError, match="estimator.params"):
        build_estimator(cfg, FEATURES)


def test_training_is_reproducible_and_learns(data):
    # The default class (HistGradientBoostingClassifier), kept small: its OpenMP threads are slow on busy CI.
    cfg = EstimatorConfig.model_validate({"params": {"max_iter": 20}})
    assert cfg.class_path.endswith("HistGradientBoostingClassifier")
    with threadpool_limits(1):  # OpenMP threads crawl on an oversubscribed host
        a = train_model(cfg, FEATURES, data)
        b = train_model(cfg, FEATURES, data)
    pa, pb = a.predict_proba(data.X_holdout), b.predict_proba(data.X_holdout)
    np.testing.assert_array_equal(pa, pb)
    assert evaluate_model(a, data.X_holdout, data.y_holdout)["accuracy"] > 0.75


def test_metrics_equal_sklearn(data):
    model = train_model(EstimatorConfig.model_validate({"class": "sklearn.linear_model.LogisticRegression"}), FEATURES, data)
    X, y = data.X_holdout, data.y_holdout
    pred = model.predict(X)
    m = evaluate_model(model, X, y)
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["precision"] == pytest.approx(precision_score(y, pred))
    assert m["recall"] == pytest.approx(recall_score(y, pred))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, model.predict_proba(X)[:, 1]))
    assert m.notes == []


def test_roc_auc_from_decision_function(data):
    model = train_model(EstimatorConfig.model_validate({"class": "sklearn.svm.LinearSVC"}), FEATURES, data)
    assert isinstance(model.named_steps["model"], LinearSVC)
    m = evaluate_model(model, data.X_holdout, data.y_holdout)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(data.y_holdout, model.decision_function(data.X_holdout)))


def test_single_class_holdout_gives_nan_auc_with_a_note_and_no_warning(data, recwarn):
    model = train_model(EstimatorConfig.model_validate({"class": "sklearn.linear_model.LogisticRegression"}), FEATURES, data)
    X = data.X_holdout.iloc[:10]
    y = pd.Series([0] * 10)
    m = evaluate_model(model, X, y)
    assert math.isnan(m["roc_auc"]) and "single class" in m.notes[0]
    assert m["accuracy"] == pytest.approx(accuracy_score(y, model.predict(X)))
    assert not [w for w in recwarn if "ill-defined" in str(w.message)]


def test_string_labels_use_the_second_class_as_positive(data):
    y_train = data.y_train.map({0: "no", 1: "yes"})
    model = build_estimator(EstimatorConfig.model_validate({"class": "sklearn.linear_model.LogisticRegression"}), FEATURES)
    model.fit(data.X_train, y_train)
    y = data.y_holdout.map({0: "no", 1: "yes"})
    m = evaluate_model(model, data.X_holdout, y)
    assert m["f1"] == pytest.approx(f1_score(y, model.predict(data.X_holdout), pos_label="yes"))


@pytest.mark.parametrize(
    ("candidate", "accepted"),
    [(0.76, True), (0.7599, False), (0.80, True), (0.90, True), (0.759999, False)],
)
def test_gate_threshold_is_inclusive(candidate, accepted):
    result = gate({"f1": candidate}, {"f1": 0.80}, GateConfig())
    assert result.accepted is accepted
    assert result.required == pytest.approx(0.76)
    assert result.champion_value == 0.80 and result.candidate_value == candidate
    assert ("accepted" if accepted else "rejected") in result.reason


def test_gate_exact_ratio_accepts_for_many_values():
    # 0.95 x champion computed in floating point must accept its own product.
    for champ in np.linspace(0.01, 1.0, 200):
        assert gate({"f1": 0.95 * champ}, {"f1": champ}, GateConfig()).accepted
        assert not gate({"f1": 0.95 * champ - 1e-6}, {"f1": champ}, GateConfig()).accepted


def test_gate_without_champion_accepts():
    result = gate({"f1": 0.1}, None, GateConfig())
    assert result.accepted and result.champion_value is None and "no champion" in result.reason


def test_gate_nan_rejects_with_reason():
    r = gate({"roc_auc": math.nan}, {"roc_auc": 0.8}, GateConfig(metric="roc_auc"))
    assert not r.accepted and "NaN" in r.reason
    r = gate({"roc_auc": 0.9}, {"roc_auc": math.nan}, GateConfig(metric="roc_auc"))
    assert not r.accepted and "champion roc_auc is NaN" in r.reason


def test_gate_uses_configured_metric_and_ratio():
    r = gate({"f1": 0.1, "accuracy": 0.9}, {"f1": 0.9, "accuracy": 0.9}, GateConfig(metric="accuracy", min_ratio=1.0))
    assert r.accepted and r.metric == "accuracy"
