"""performance's p-value: each metric's against scipy on the same rows, Bonferroni over metrics,
and the trigger fired exactly when its p-value is below K x 1% (K metrics judged)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from scipy import stats

from retrainer.testing import make_context
from retrainer.triggers.performance import PerformanceTrigger

NOW = datetime(2025, 3, 5, tzinfo=timezone.utc)
ALL = {"accuracy": 0.85, "f1": 0.7, "precision": 0.7, "recall": 0.7, "roc_auc": 0.75}


def log(n: int, accuracy: float, rng: np.random.Generator, positives: float = 0.5) -> dict:
    ts = [NOW - timedelta(hours=1 + i * 0.1) for i in range(n)]
    y = (rng.random(n) < positives).astype(float)
    pred = np.where(rng.random(n) < accuracy, y, 1 - y)
    score = np.clip(np.where(pred == 1, 0.65, 0.35) + rng.normal(0, 0.2, n), 0, 1)
    return {"ts": ts, "y_true": y, "y_pred": pred, "score": score, "labelled_at": ts}


def hanley_mcneil_p(auc: float, a: float, n_pos: int, n_neg: int) -> float:
    q1, q2 = a / (2 - a), 2 * a**2 / (1 + a)
    se = math.sqrt((a * (1 - a) + (n_pos - 1) * (q1 - a**2) + (n_neg - 1) * (q2 - a**2)) / (n_pos * n_neg))
    return float(stats.norm.cdf((auc - a) / se))


@pytest.mark.parametrize("seed", range(8))
def test_each_metrics_pvalue_is_scipys_tail_on_the_rows_its_cut_counts(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(40, 400))
    data = log(n, float(rng.uniform(0.6, 0.95)), rng, positives=float(rng.uniform(0.2, 0.6)))
    d = PerformanceTrigger({"thresholds": ALL, "min_labels": 20, "window": "7d"}).evaluate(make_context(data, now=NOW))
    y, pred = np.asarray(data["y_true"]), np.asarray(data["y_pred"])
    tp, pos, hit = int(((y == 1) & (pred == 1)).sum()), int((y == 1).sum()), int((pred == 1).sum())
    rows = {"accuracy": (int((y == pred).sum()), n), "precision": (tp, hit), "recall": (tp, pos),
            "f1": (math.floor(tp * math.floor((pos + hit) / 2) / ((pos + hit) / 2) + 1e-9), math.floor((pos + hit) / 2))}
    metrics, pvalues = d.evidence["metrics"], d.evidence["pvalues"]
    for m, (x, rows_m) in rows.items():
        want = stats.binom.cdf(x, rows_m, ALL[m] + 0.05) if metrics[m] < ALL[m] else 1.0
        assert pvalues[m] == pytest.approx(want, rel=1e-12, abs=1e-300), m
    a = ALL["roc_auc"] + 0.05
    want_auc = hanley_mcneil_p(metrics["roc_auc"], a, pos, n - pos) if metrics["roc_auc"] < ALL["roc_auc"] else 1.0
    assert pvalues["roc_auc"] == pytest.approx(want_auc, rel=1e-10, abs=1e-300)
    assert d.evidence["pvalue"] == pytest.approx(min(1.0, 5 * min(pvalues.values())), rel=1e-12)


def test_fired_exactly_when_the_pvalue_is_below_k_times_alpha_at_low_volume():
    rng = np.random.default_rng(22)
    seen = {"fired": 0, "ok": 0}
    for i in range(300):
        thresholds = dict(list(ALL.items())[: 1 + i % 5])
        n = int(rng.integers(15, 250))
        d = PerformanceTrigger({"thresholds": thresholds, "min_labels": 10, "window": "7d"}).evaluate(
            make_context(log(n, float(rng.uniform(0.7, 0.95)), rng), now=NOW))
        if d.status == "insufficient_data":
            assert "pvalue" not in d.evidence
            continue
        k = len(d.evidence["pvalues"])
        assert d.fired == (d.evidence["pvalue"] < k * d.evidence["alpha"]), (i, d.reason, d.evidence["pvalues"])
        assert sorted(d.evidence["failing"]) == sorted(m for m, p in d.evidence["pvalues"].items() if p < 0.01)
        if not d.fired:
            assert min(d.evidence["pvalues"].values()) >= 0.01  # no small p on a window that did not fire
        seen[d.status] += 1
    assert seen["fired"] >= 30 and seen["ok"] >= 30


def test_a_borderline_small_window_that_does_not_fire_has_no_small_pvalue():
    # 40 labels, 31 right (0.775 < floor 0.85): the cut at n = 40 is 31/40 (fire below it), so it does not fire; p is the
    # exact P(X <= 31) at 0.90, not tiny.
    y = np.ones(40)
    pred = np.r_[np.ones(31), np.zeros(9)]
    ts = [NOW - timedelta(hours=1 + i) for i in range(40)]
    d = PerformanceTrigger({"thresholds": {"accuracy": 0.85}, "min_labels": 40, "window": "7d"}).evaluate(
        make_context({"ts": ts, "y_true": y, "y_pred": pred, "score": pred, "labelled_at": ts}, now=NOW))
    assert d.status == "ok" and d.evidence["cuts"]["accuracy"] == 31 / 40
    assert d.evidence["pvalue"] == pytest.approx(stats.binom.cdf(31, 40, 0.90), rel=1e-12)
    assert 0.01 < d.evidence["pvalue"] < 0.02  # P(X <= 30) = 0.005 would have fired


def test_no_pvalue_without_enough_labels():
    d = PerformanceTrigger({"min_labels": 500}).evaluate(make_context(log(50, 0.5, np.random.default_rng(0)), now=NOW))
    assert d.status == "insufficient_data" and "pvalue" not in d.evidence
