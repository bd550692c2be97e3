"""retrainer.metrics against sklearn on the same data, and the one gate's NaN rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegression

from retrainer.config import GateConfig
from retrainer.metrics import classification_metrics, gate, label_metrics, roc_auc
from retrainer.tasks.evaluate import evaluate_model


@pytest.fixture
def binary():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    pred = np.where(rng.random(300) < 0.8, y, 1 - y)
    score = np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1)
    return y, pred, score


def test_label_metrics_equal_sklearn_with_last_class_positive(binary) -> None:
    y, pred, _ = binary
    m = label_metrics(y, pred)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label=1))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label=1))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label=1))


def test_string_labels_use_the_sorted_last_class_as_positive(binary) -> None:
    y, pred, score = binary
    ys, ps = np.where(y == 1, "yes", "no"), np.where(pred == 1, "yes", "no")
    m = label_metrics(ys, ps)
    assert m["f1"] == pytest.approx(skm.f1_score(ys, ps, pos_label="yes"))
    assert m["recall"] == pytest.approx(skm.recall_score(ys, ps, pos_label="yes"))
    auc, note = roc_auc(ys, score, np.array(["no", "yes"]))
    assert note is None and auc == pytest.approx(skm.roc_auc_score(ys == "yes", score))


def test_evaluate_model_uses_classes_last_on_string_labels() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    y = np.where(X[:, 0] + 0.5 * rng.normal(size=200) > 0, "yes", "no")
    model = LogisticRegression().fit(X, y)
    assert model.classes_[-1] == "yes"
    m = evaluate_model(model, X, y)
    pred = model.predict(X)
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="yes"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "yes", model.predict_proba(X)[:, 1]))


def test_trigger_metrics_equal_label_metrics_and_sklearn(binary) -> None:
    y, pred, score = binary
    fast = classification_metrics(y.astype(float), pred.astype(float), score)
    slow = label_metrics(y, pred)
    for k in ("accuracy", "f1", "precision", "recall"):
        assert fast[k] == pytest.approx(slow[k])
    assert fast["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))


def test_single_class_auc_is_nan_with_a_reason() -> None:
    auc, note = roc_auc(np.ones(5), np.linspace(0, 1, 5), np.array([0, 1]))
    assert math.isnan(auc) and "single class" in note


@pytest.mark.parametrize(
    ("cand", "champion", "accepted"),
    [(0.76, {"f1": 0.80}, True), (0.7599, {"f1": 0.80}, False), (0.5, None, True),
     (math.nan, {"f1": 0.80}, False), (0.9, {"f1": math.nan}, False), (None, {"f1": 0.8}, False),
     (math.nan, None, False)],
)
def test_gate_rule_and_nan_rejection(cand, champion, accepted) -> None:
    assert gate({"f1": cand}, champion, GateConfig()).accepted is accepted


def test_metric_differences_keep_the_metrics_both_sides_hold_as_finite_numbers():
    from retrainer.metrics import metric_differences

    candidate = {"accuracy": 0.9, "f1": 0.8, "roc_auc": float("nan"), "recall": 0.7, "note": "x"}
    champion = {"accuracy": 0.85, "f1": 0.82, "roc_auc": 0.7, "precision": 0.6, "note": "y"}
    assert metric_differences(candidate, champion) == pytest.approx({"accuracy": 0.05, "f1": -0.02})
    assert metric_differences(candidate, None) == {}
