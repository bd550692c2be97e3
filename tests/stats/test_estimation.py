"""CBPE estimation and calibration maps, against brute force, sklearn and a simulation with a known truth."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

from retrainer.errors import StatisticsError
from retrainer.stats.calibration import CalibrationMap, fit_calibration
from retrainer.stats.estimation import ESTIMATED_METRICS, estimate_performance


def _sk_metrics(y, pred, score):
    return {
        "accuracy": accuracy_score(y, pred),
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "roc_auc": roc_auc_score(y, score),
    }


# --- exactness ----------------------------------------------------------------------------------


def test_all_labels_arrived_equals_sklearn_and_the_ci_closes():
    rng = np.random.default_rng(3)
    score = np.round(rng.random(500), 2)  # ties in the score, as real models have
    y = (rng.random(500) < score).astype(float)
    pred = score >= 0.4
    est = estimate_performance(rng.random(500), pred, labels=y, score=score)
    ref = _sk_metrics(y, pred, score)
    for m in ESTIMATED_METRICS:
        assert est.metrics[m] == pytest.approx(ref[m], abs=1e-12), m
        assert est.ci[m] == (pytest.approx(ref[m], abs=1e-12), pytest.approx(ref[m], abs=1e-12))
        assert est.se[m] == 0.0
    assert est.realized_share == 1.0 and est.n_realized == 500


def _enumerate(q, fixed):
    """Every label vector with its probability: rows in ``fixed`` keep their label."""
    free = [i for i in range(len(q)) if i not in fixed]
    for bits in itertools.product([0.0, 1.0], repeat=len(free)):
        y = np.array([fixed.get(i, 0.0) for i in range(len(q))])
        y[free] = bits
        prob = float(np.prod([q[i] if y[i] else 1 - q[i] for i in free]))
        yield y, prob


def test_expected_confusion_accuracy_variance_and_auc_match_brute_force():
    p = np.array([0.9, 0.15, 0.6, 0.35, 0.5, 0.8, 0.05])
    score = np.array([3.0, -1.0, 1.0, 0.0, 1.0, 2.0, -2.0])  # rows 2 and 4 tie
    pred = np.array([1, 0, 1, 0, 1, 1, 0], bool)
    labels = np.full(7, np.nan)
    labels[[1, 5]] = [1.0, 0.0]  # two labels have arrived
    est = estimate_performance(p, pred, labels=labels, score=score)

    e_tp = e_fp = e_fn = e_tn = e_acc = e_acc2 = e_u = e_pn = 0.0
    for y, prob in _enumerate(p, {1: 1.0, 5: 0.0}):
        t = y == 1
        e_tp += prob * np.sum(t & pred)
        e_fp += prob * np.sum(~t & pred)
        e_fn += prob * np.sum(t & ~pred)
        e_tn += prob * np.sum(~t & ~pred)
        acc = np.mean(t == pred)
        e_acc, e_acc2 = e_acc + prob * acc, e_acc2 + prob * acc * acc
        # U over ordered pairs i != j, ties 1/2, and the number of positive-negative pairs.
        gt = (score[:, None] > score[None, :]) + 0.5 * (score[:, None] == score[None, :])
        np.fill_diagonal(gt, 0.0)
        e_u += prob * float(t.astype(float) @ gt @ (1 - t.astype(float)))
        e_pn += prob * t.sum() * (~t).sum()
    c = est.confusion
    assert (c.tp, c.fp, c.fn, c.tn) == pytest.approx((e_tp, e_fp, e_fn, e_tn), abs=1e-12)
    assert est.metrics["accuracy"] == pytest.approx(e_acc, abs=1e-12)
    assert est.se["accuracy"] == pytest.approx(np.sqrt(e_acc2 - e_acc**2), abs=1e-12)  # accuracy is linear: exact
    assert est.metrics["roc_auc"] == pytest.approx(e_u / e_pn, abs=1e-12)
    assert est.metrics["precision"] == pytest.approx(e_tp / pred.sum(), abs=1e-12)
    assert est.metrics["f1"] == pytest.approx(2 * e_tp / (2 * e_tp + e_fp + e_fn), abs=1e-12)
    assert est.realized_share == pytest.approx(2 / 7)


def _metrics_of_draws(Y, pred, score):
    """The five metrics of every row of label draws ``Y`` at once (textbook formulas, mid-rank AUC)."""
    from scipy.stats import rankdata

    tp, fp = Y @ pred, (1 - Y) @ pred
    fn = Y @ (1 - pred)
    n_pos = Y.sum(axis=1)
    n_neg = Y.shape[1] - n_pos
    auc = (Y @ rankdata(score) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return {"accuracy": 1 - (fp + fn) / Y.shape[1], "precision": tp / (tp + fp), "recall": tp / (tp + fn),
            "f1": 2 * tp / (2 * tp + fp + fn), "roc_auc": auc}


def test_standard_errors_match_monte_carlo_of_the_realized_metrics():
    rng = np.random.default_rng(11)
    n = 800
    x = rng.normal(size=n)
    p = 1 / (1 + np.exp(-1.5 * x))
    pred = p >= 0.5
    score = np.round(x, 1)
    est = estimate_performance(p, pred, score=score)
    Y = (rng.random((4000, n)) < p).astype(float)
    draws = _metrics_of_draws(Y, pred.astype(float), score)
    one = _sk_metrics(Y[0], pred, score)  # the vectorised formulas are sklearn's
    assert {m: draws[m][0] for m in ESTIMATED_METRICS} == pytest.approx(one, abs=1e-12)
    for m in ESTIMATED_METRICS:
        assert est.metrics[m] == pytest.approx(np.mean(draws[m]), abs=0.003), m
        assert est.se[m] == pytest.approx(np.std(draws[m]), rel=0.08), m


def test_no_predicted_positive_gives_zero_precision_like_sklearn_and_one_class_no_auc():
    est = estimate_performance(np.array([0.2, 0.3]), np.array([False, False]))
    assert est.metrics["precision"] == 0.0 and est.metrics["f1"] == 0.0
    est = estimate_performance(np.array([0.2, 0.3]), np.array([True, False]), labels=np.array([1.0, 1.0]))
    assert est.metrics["roc_auc"] is None and est.ci["roc_auc"] is None


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"proba": [], "predicted": []}, "no predictions"),
        ({"proba": [0.5, 1.5], "predicted": [1, 0]}, "within [0, 1]"),
        ({"proba": [0.5, np.nan], "predicted": [1, 0]}, "calibrate"),
        ({"proba": [0.5, 0.5], "predicted": [1]}, "aligned"),
        ({"proba": [0.5, 0.5], "predicted": [1, 0], "labels": [2.0, np.nan]}, "NaN (not arrived"),
        ({"proba": [0.5, 0.5], "predicted": [1, 0], "confidence": 1.0}, "confidence"),
    ],
)
def test_bad_input_says_what_to_do(kwargs, needle):
    with pytest.raises(StatisticsError, match=needle.replace("[", r"\[").replace("(", r"\(")):
        estimate_performance(**kwargs)


def test_a_label_rescues_a_row_without_probability():
    est = estimate_performance(np.array([0.5, np.nan]), np.array([1, 0]), labels=np.array([np.nan, 0.0]))
    assert est.metrics["accuracy"] == pytest.approx(0.75)


# --- calibration maps ---------------------------------------------------------------------------


def test_isotonic_map_applies_like_sklearn_and_round_trips_through_json():
    rng = np.random.default_rng(5)
    s = rng.random(3000)
    y = (rng.random(3000) < np.where(s > 0.5, 0.9, 0.1)).astype(int)  # a step: isotonic's ground
    cal = fit_calibration(s, y)
    assert cal.method == "isotonic" and cal.log_loss["isotonic"] < cal.log_loss["platt"]
    iso = IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip").fit(s, y)
    grid = np.linspace(-0.2, 1.2, 301)
    np.testing.assert_allclose(cal.apply(grid), iso.predict(grid), atol=1e-12)
    back = CalibrationMap.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(back.apply(grid), cal.apply(grid))


def test_platt_wins_on_a_logistic_truth_and_matches_an_unpenalised_logistic_fit():
    rng = np.random.default_rng(6)
    d = rng.normal(size=4000) * 2  # a decision function, not a probability: Platt on the raw score
    y = (rng.random(4000) < 1 / (1 + np.exp(-(0.7 * d - 0.3)))).astype(int)
    cal = fit_calibration(d, y)
    assert cal.method == "platt" and not cal.logit_input
    lr = LogisticRegression(C=np.inf).fit(d.reshape(-1, 1), y)
    assert (cal.a, cal.b) == pytest.approx((lr.coef_[0, 0], lr.intercept_[0]), abs=1e-3)
    assert (cal.a, cal.b) == pytest.approx((0.7, -0.3), abs=0.1)
    back = CalibrationMap.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back == cal


def test_calibration_refuses_what_it_cannot_fit():
    with pytest.raises(StatisticsError, match="at least 5 of each"):
        fit_calibration([0.1, 0.2, 0.3], [0, 1, 0])
    with pytest.raises(StatisticsError, match="binary"):
        fit_calibration(np.linspace(0, 1, 20), np.arange(20) % 3)
    with pytest.raises(StatisticsError, match="refit"):
        CalibrationMap.from_dict({"version": 1, "method": "isotonic", "x": [0.0]})
    with pytest.raises(StatisticsError, match="calibration map"):
        CalibrationMap.from_dict({"method": "platt"})


# --- the simulation: covariate shift, a fixed P(y | x), truth known ------------------------------


def _world(rng, n, shift):
    """Two features whose mean moves with ``shift``; P(y | x) logistic and the same in every window."""
    x = rng.normal(size=(n, 2)) + shift
    p_true = 1 / (1 + np.exp(-(1.8 * x[:, 0] - 1.2 * x[:, 1] + 0.3)))
    return x, (rng.random(n) < p_true).astype(int)


@pytest.mark.slow
def test_estimate_covers_the_realized_metric_under_covariate_shift():
    rng = np.random.default_rng(2026)
    x_train, y_train = _world(rng, 5000, np.zeros(2))
    # Strong regularisation: the scores rank well but are badly under-confident, so calibration matters.
    model = LogisticRegression(C=0.0005).fit(x_train, y_train)
    x_ref, y_ref = _world(rng, 20_000, np.zeros(2))
    cal = fit_calibration(model.predict_proba(x_ref)[:, 1], y_ref)
    threshold = 0.5  # the model's own decision on its raw score

    inside = {m: 0 for m in ESTIMATED_METRICS}
    errors = {m: [] for m in ESTIMATED_METRICS}
    windows = 240
    for w in range(windows):
        angle = 2 * np.pi * w / windows
        shift = (w / windows) * 1.5 * np.array([np.cos(angle), np.sin(angle)])
        x, y = _world(rng, 2000, shift)
        score = model.predict_proba(x)[:, 1]
        pred = score >= threshold
        est = estimate_performance(cal.apply(score), pred, score=score)
        truth = _sk_metrics(y, pred, score)
        for m in ESTIMATED_METRICS:
            lo, hi = est.ci[m]
            inside[m] += lo <= truth[m] <= hi
            errors[m].append(abs(est.metrics[m] - truth[m]))
    coverage = {m: inside[m] / windows for m in ESTIMATED_METRICS}
    assert all(c >= 0.90 for c in coverage.values()), coverage
    assert np.mean(errors["accuracy"]) <= 0.02 and np.mean(errors["f1"]) <= 0.02, {
        m: np.mean(e) for m, e in errors.items()
    }
    # The test can fail: uncalibrated scores (the raw, under-confident ones) break the estimate.
    x, y = _world(rng, 2000, np.array([1.0, 0.0]))
    score = model.predict_proba(x)[:, 1]
    raw = estimate_performance(score, score >= threshold, score=score)
    assert abs(raw.metrics["accuracy"] - accuracy_score(y, score >= threshold)) > 0.05


@pytest.mark.parametrize("name", ["estimation", "calibration"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"retrainer.stats.{name}"))
    assert result.attempted > 0 and result.failed == 0
