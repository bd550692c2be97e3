"""Score a model on the holdout: accuracy, F1, precision, recall, ROC AUC.

Candidate and champion are scored by this one function on the same holdout, so the gate
compares like with like. The definitions (positive class, zero division, NaN ROC AUC on a
single-class holdout) are those of :mod:`retrainer.metrics`, shared with the A/B verdict.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from retrainer.metrics import METRIC_NAMES, label_metrics, resolve_classes, roc_auc


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


# Compute: no retries.
evaluate_model_task = task(evaluate_model, name="evaluate", cache_policy=NO_CACHE)

__all__ = ["METRIC_NAMES", "Metrics", "evaluate_model", "evaluate_model_task"]
