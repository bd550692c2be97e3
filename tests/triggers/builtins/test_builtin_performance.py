"""performance: metrics equal scikit-learn's on the same data; min_labels; coverage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from sklearn import metrics as skm

from retrainer.testing import make_context
from retrainer.triggers.performance import PerformanceTrigger, classification_metrics

NOW = datetime(2025, 3, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("seed", range(6))
def test_metrics_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 400))
    y = rng.integers(0, 2, n).astype(float)
    score = np.round(np.clip(0.3 * y + rng.random(n) * 0.8, 0, 1), 2 if seed % 2 else 6)  # ties on odd seeds
    pred = (score > rng.uniform(0.2, 0.8)).astype(float)
    got = classification_metrics(y, pred, score)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, zero_division=0), abs=1e-12)
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, zero_division=0), abs=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, zero_division=0), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)


def test_degenerate_cases_match_sklearn_zero_division():
    y = np.array([0.0, 0.0, 1.0]); pred = np.zeros(3)
    got = classification_metrics(y, pred, np.full(3, np.nan))
    assert got["precision"] == skm.precision_score(y, pred, zero_division=0) == 0.0
    assert got["f1"] == 0.0 and got["roc_auc"] is None  # no scores
    assert classification_metrics(np.ones(3), np.ones(3), np.array([0.1, 0.2, 0.3]))["roc_auc"] is None  # one class


def log(n, accuracy, coverage=1.0, seed=0):
    rng = np.random.default_rng(seed)
    ts = [NOW - timedelta(hours=1 + i * 0.1) for i in range(n)]
    y = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < accuracy, y, 1 - y)
    labelled = rng.random(n) < coverage
    return {"ts": ts, "y_true": np.where(labelled, y, np.nan), "y_pred": pred,
            "score": np.where(pred == 1, 0.8, 0.2), "labelled_at": ts}


def test_fires_below_threshold_with_evidence():
    d = PerformanceTrigger({"thresholds": {"accuracy": 0.85}, "min_labels": 100}).evaluate(
        make_context(log(400, 0.7), now=NOW))
    assert d.fired and d.value < 0.85 and d.threshold == 0.85
    # window auto: the newest min_labels labels are judged, and the evidence says which window that was.
    assert list(d.evidence["failing"]) == ["accuracy"] and d.evidence["n_labelled"] == 100
    assert d.evidence["window"]["limit"] == "count" and d.evidence["window"]["n"] == 100
    assert d.evidence["label_coverage"] == 1.0
    fixed = PerformanceTrigger({"thresholds": {"accuracy": 0.85}, "min_labels": 100, "window": "7d"}).evaluate(
        make_context(log(400, 0.7), now=NOW))
    assert fixed.evidence["n_labelled"] == 400 and fixed.evidence["window"]["limit"] == "fixed"


def test_ok_above_threshold_and_worst_metric_reported():
    d = PerformanceTrigger({"thresholds": {"accuracy": 0.5, "roc_auc": 0.5}, "min_labels": 10}).evaluate(
        make_context(log(400, 0.95), now=NOW))
    assert d.status == "ok" and d.evidence["worst"] in ("accuracy", "roc_auc")


def test_too_few_labels_is_insufficient_not_a_fire():
    # Terrible accuracy, but only ~10% of 500 predictions are labelled: 50 < min_labels.
    d = PerformanceTrigger({"min_labels": 200}).evaluate(make_context(log(500, 0.1, coverage=0.1), now=NOW))
    assert d.status == "insufficient_data" and not d.fired
    assert 0.05 < d.evidence["label_coverage"] < 0.15 and "coverage" in d.reason


def test_labels_arriving_after_now_are_not_used():
    data = log(400, 0.5)
    data["labelled_at"] = [t + timedelta(days=3) for t in data["ts"]]
    assert PerformanceTrigger({"min_labels": 1}).evaluate(make_context(data, now=NOW)).status == "insufficient_data"


def test_seed_defaults():
    p = PerformanceTrigger().params
    assert p.thresholds == {"accuracy": 0.85, "f1": 0.70}


def test_a_new_champion_is_judged_on_its_own_predictions():
    from retrainer.triggers.context import ChampionInfo

    rng = np.random.default_rng(3)
    n = 600
    y = rng.integers(0, 2, size=n).astype(float)
    old_wrong = rng.random(n) < 0.4  # the old champion (v1) was right 60% of the time
    frame = {
        "ts": [NOW - timedelta(hours=1 + i * 0.2) for i in range(n)],
        "model_version": ["1"] * (n // 2) + ["2"] * (n // 2),
        "y_true": y,
        "y_pred": np.where(np.arange(n) < n // 2, np.where(old_wrong, 1 - y, y), y),  # v2 is always right
        "score": np.full(n, np.nan),
        "labelled_at": [NOW - timedelta(minutes=1)] * n,
    }
    # Every label arrived a minute ago (a backfill): judge the window ending now.
    trigger = PerformanceTrigger({"thresholds": {"accuracy": 0.85}, "min_labels": 100, "maturity": "none"})
    ctx = make_context(frame, now=NOW, champion=ChampionInfo(version="2"))
    assert trigger.evaluate(ctx).fired is False and trigger.evaluate(ctx).value == 1.0
    blended = PerformanceTrigger({"thresholds": {"accuracy": 0.85}, "min_labels": 100, "champion_only": False,
                                  "maturity": "none"})
    assert blended.evaluate(ctx).fired is True
