"""Score a model on the holdout (accuracy, F1, precision, recall, ROC AUC), and two models' paired difference.

Candidate and champion are scored by this one function on the same holdout, so the gate
compares like with like. The definitions (positive class, zero division, NaN ROC AUC on a
single-class holdout) are those of :mod:`retrainer.metrics`, shared with the A/B verdict.

:func:`holdout_difference` is the offline evidence a rollout's prior starts from
(``deployments/rollout/decision.py``): Δ_off = candidate - champion on the gate metric, on the
same holdout rows, with its standard error. Pairing matters: both models err on mostly the same
hard rows, so the difference is far tighter than two separate metrics' errors would suggest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from retrainer.metrics import METRIC_NAMES, classification_metrics, label_metric, label_metrics, resolve_classes, roc_auc
from retrainer.stats.paired import Estimate, paired_bootstrap, paired_difference

# Bootstrap resamples for a metric that is not a mean of rows (f1, ROC AUC...): the standard
# error's own relative error is ~1/sqrt(2 x 1000) = 2 %, well below what the prior's tau adds.
HOLDOUT_BOOTSTRAP = 1000


class Metrics(dict[str, float]):
    """``{metric: value}``; ``notes`` explains any NaN (e.g. single-class holdout)."""

    def __init__(self, values: dict[str, float], notes: list[str] | None = None) -> None:
        super().__init__(values)
        self.notes: list[str] = list(notes or [])


def _scores(model: Any, X: pd.DataFrame, classes: np.ndarray) -> np.ndarray | None:
    """Scores for ROC AUC: probability of each class (multiclass) or of the positive class."""
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype=float)
        return proba[:, 1] if proba.ndim == 2 and proba.shape[1] == 2 else proba
    if hasattr(model, "decision_function") and len(classes) == 2:
        return np.asarray(model.decision_function(X), dtype=float)
    return None


def evaluate_model(model: Any, X: pd.DataFrame, y: pd.Series | np.ndarray) -> Metrics:
    """Classification metrics of ``model`` on ``(X, y)``, by the rules of :mod:`retrainer.metrics`.

    Binary labels use the model's last class (``classes_[-1]``, e.g. 1 or "yes") as positive;
    more than two classes use macro averages and one-vs-rest ROC AUC.
    """
    y_true = np.asarray(y)
    y_pred = np.asarray(model.predict(X))
    classes = resolve_classes(y_true, y_pred, getattr(model, "classes_", None))
    values = label_metrics(y_true, y_pred, classes)
    notes: list[str] = []
    if len(np.unique(y_true)) < 2:  # skip scoring: the AUC is undefined whatever the scores
        values["roc_auc"], note = roc_auc(y_true, np.zeros(len(y_true)), classes)
    else:
        values["roc_auc"], note = roc_auc(y_true, _scores(model, X, classes), classes)
    if note:
        notes.append(note.replace("the sample", "the holdout"))
    return Metrics(values, notes)


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def _metric_of(metric: str, classes: np.ndarray) -> Callable[[np.ndarray, np.ndarray], float]:
    """``f(y_true, answer) -> float`` for one metric: ``answer`` is the hard prediction, or the
    score for ``roc_auc``. Binary metrics use numpy-only :func:`classification_metrics` (the
    bootstrap calls it a thousand times: sklearn's would take seconds); more classes use the
    sklearn definitions of :func:`label_metric`."""
    if len(classes) <= 2:
        pos = classes[-1] if len(classes) else 1
        if metric == "roc_auc":
            return lambda y, s: _nan_if_none(classification_metrics(y, y, s, positive_label=pos)["roc_auc"])
        return lambda y, p: _nan_if_none(classification_metrics(y, p, np.full(len(y), np.nan), pos)[metric])
    if metric == "roc_auc":
        return lambda y, s: roc_auc(y, s, classes)[0]
    return lambda y, p: label_metric(y, p, classes, metric)


@dataclass(frozen=True)
class HoldoutDifference:
    """Δ_off (``delta``) and the share of holdout rows where the two models answer differently
    (``disagreement``: what a paired shadow's per-pair variance will be, for the rollout plan)."""

    metric: str
    delta: Estimate
    disagreement: float

    def to_dict(self) -> dict[str, Any]:
        d = self.delta.to_dict()
        return {"metric": self.metric, "mean": d["mean"], "se": d["se"], "n": d["n"],
                "interval_95": d["interval_95"], "disagreement": self.disagreement}


def holdout_difference(
    candidate: Any, champion: Any, X: pd.DataFrame, y: pd.Series | np.ndarray, metric: str,
    *, n_boot: int = HOLDOUT_BOOTSTRAP, seed: int = 0,
) -> HoldoutDifference:
    """Δ_off = ``metric(candidate) - metric(champion)`` on the same holdout rows, with its standard error.

    Accuracy is a mean of per-row correctness, so its difference is the mean of the paired
    differences of correctness with the textbook standard error ``sd(d) / sqrt(n)`` (no
    resampling). Every other metric gets the paired bootstrap: resample rows, score both models
    on the same rows (:func:`retrainer.stats.paired.paired_bootstrap`).
    """
    y_true = np.asarray(y)
    pred_cand, pred_champ = np.asarray(candidate.predict(X)), np.asarray(champion.predict(X))
    disagreement = float(np.mean(pred_cand != pred_champ)) if len(y_true) else float("nan")

    def result(delta: Estimate) -> HoldoutDifference:
        return HoldoutDifference(metric, delta, disagreement)

    if metric == "accuracy":
        return result(paired_difference(pred_cand == y_true, pred_champ == y_true))
    classes = resolve_classes(y_true, np.concatenate([pred_cand, pred_champ]), getattr(candidate, "classes_", None))
    if metric == "roc_auc":
        score_cand, score_champ = _scores(candidate, X, classes), _scores(champion, X, classes)
        if score_cand is None or score_champ is None:  # no scores: the AUC, hence its difference, is undefined
            return result(Estimate(mean=float("nan"), se=float("inf"), n=len(y_true)))
        pred_cand, pred_champ = score_cand, score_champ
    metric_fn = _metric_of(metric, classes)
    return result(paired_bootstrap(y_true, pred_cand, pred_champ, metric_fn, n_boot=n_boot, seed=seed))


# Compute: no retries.
evaluate_model_task = task(evaluate_model, name="evaluate", cache_policy=NO_CACHE)
holdout_difference_task = task(holdout_difference, name="holdout-difference", cache_policy=NO_CACHE)

__all__ = ["METRIC_NAMES", "HoldoutDifference", "Metrics", "evaluate_model", "evaluate_model_task", "holdout_difference",
           "holdout_difference_task"]
