"""Δ_off, the offline paired difference the rollout's prior starts from, against independent references:
the textbook standard error of a mean of paired differences, a brute-force paired bootstrap written
here with sklearn's own metrics, and sklearn's point values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score, roc_auc_score

from retrainer.tasks.evaluate import holdout_difference


class Fixed:
    """A stand-in model whose answers on the holdout are given (rows are identified by column ``i``)."""

    def __init__(self, pred: np.ndarray, score: np.ndarray | None = None, classes=(0, 1)) -> None:
        self.pred, self.score, self.classes_ = pred, score, np.asarray(classes)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.pred[X["i"].to_numpy()]

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        s = self.score[X["i"].to_numpy()]
        return np.column_stack([1 - s, s])


def _world(n: int = 1500, seed: int = 7):
    """A holdout where two models share most of their errors (as a retrained and a stale model do)."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    base = np.clip(0.35 + 0.35 * (2 * y - 1) + rng.normal(0, 0.25, n), 0, 1)
    champ_score = np.clip(base + rng.normal(0, 0.08, n), 0, 1)
    chal_score = np.clip(base + 0.06 * (2 * y - 1) + rng.normal(0, 0.08, n), 0, 1)
    X = pd.DataFrame({"i": np.arange(n)})
    chal = Fixed((chal_score > 0.5).astype(int), chal_score)
    champ = Fixed((champ_score > 0.5).astype(int), champ_score)
    return X, y, chal, champ


def _brute_force_bootstrap(y, a, b, metric, n_boot: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        diffs.append(metric(y[idx], a[idx]) - metric(y[idx], b[idx]))
    return float(np.std(diffs, ddof=1))


def test_accuracy_difference_is_the_mean_paired_difference_with_the_textbook_se():
    X, y, chal, champ = _world()
    got = holdout_difference(chal, champ, X, y, "accuracy")
    d = (chal.pred == y).astype(float) - (champ.pred == y).astype(float)
    assert got.delta.mean == pytest.approx(d.mean(), abs=1e-12)
    assert got.delta.se == pytest.approx(d.std(ddof=1) / math.sqrt(len(d)), rel=1e-12)
    assert got.delta.n == len(y)
    # Only rows where the models disagree carry a difference: var(d) = q - Δ² for a binary label.
    q = float(np.mean(chal.pred != champ.pred))
    assert got.disagreement == q
    assert got.delta.se == pytest.approx(math.sqrt((q - d.mean() ** 2) * len(d) / (len(d) - 1) / len(d)), rel=1e-9)
    # ... and a brute-force paired bootstrap of the accuracy difference agrees within its own noise.
    boot = _brute_force_bootstrap(y, chal.pred, champ.pred, lambda t, p: float(np.mean(t == p)), 2000, seed=11)
    assert got.delta.se == pytest.approx(boot, rel=0.08)
    # Pairing is why it is tight: two independent accuracies would have a far larger se.
    p1, p2 = np.mean(chal.pred == y), np.mean(champ.pred == y)
    unpaired = math.sqrt(p1 * (1 - p1) / len(y) + p2 * (1 - p2) / len(y))
    assert got.delta.se < 0.6 * unpaired


def test_f1_difference_matches_sklearn_and_a_brute_force_paired_bootstrap():
    X, y, chal, champ = _world()
    got = holdout_difference(chal, champ, X, y, "f1")
    assert got.delta.mean == pytest.approx(f1_score(y, chal.pred) - f1_score(y, champ.pred), abs=1e-12)
    def f1(t, p):  # the textbook 2TP / (2TP + FP + FN), checked against sklearn once
        tp, fp, fn = np.sum((t == 1) & (p == 1)), np.sum((t == 0) & (p == 1)), np.sum((t == 1) & (p == 0))
        return 2 * tp / (2 * tp + fp + fn)

    assert f1(y, chal.pred) == pytest.approx(f1_score(y, chal.pred), abs=1e-12)
    boot = _brute_force_bootstrap(y, chal.pred, champ.pred, f1, 2000, seed=5)
    assert got.delta.se == pytest.approx(boot, rel=0.1)
    lo, hi = got.to_dict()["interval_95"]
    assert lo < got.delta.mean < hi and hi - lo == pytest.approx(2 * 1.959964 * got.delta.se, rel=1e-6)


def test_roc_auc_difference_uses_the_scores():
    X, y, chal, champ = _world(n=800)
    got = holdout_difference(chal, champ, X, y, "roc_auc", n_boot=400)
    assert got.delta.mean == pytest.approx(roc_auc_score(y, chal.score) - roc_auc_score(y, champ.score), abs=1e-12)
    boot = _brute_force_bootstrap(y, chal.score, champ.score, roc_auc_score, 400, seed=3)
    assert got.delta.se == pytest.approx(boot, rel=0.15)


def test_multiclass_uses_macro_f1_and_string_labels_work():
    rng = np.random.default_rng(1)
    n = 600
    labels = np.array(["a", "b", "c"])
    y = labels[rng.integers(0, 3, n)]
    chal_pred = np.where(rng.random(n) < 0.8, y, labels[rng.integers(0, 3, n)])
    champ_pred = np.where(rng.random(n) < 0.7, y, labels[rng.integers(0, 3, n)])
    X = pd.DataFrame({"i": np.arange(n)})
    got = holdout_difference(Fixed(chal_pred, classes=labels), Fixed(champ_pred, classes=labels), X, y, "f1", n_boot=200)
    want = f1_score(y, chal_pred, average="macro") - f1_score(y, champ_pred, average="macro")
    assert got.delta.mean == pytest.approx(want, abs=1e-12) and got.delta.se > 0


def test_identical_models_differ_by_exactly_zero():
    X, y, chal, _ = _world(n=300)
    got = holdout_difference(chal, chal, X, y, "f1", n_boot=200)
    assert (got.delta.mean, got.delta.se, got.disagreement) == (0.0, 0.0, 0.0)
    assert got.to_dict() == {"metric": "f1", "mean": 0.0, "se": 0.0, "n": 300, "interval_95": [0.0, 0.0],
                             "disagreement": 0.0}
