"""Score a model on the holdout: accuracy, F1, precision, recall, ROC AUC.

Candidate and champion are scored by this one function on the same holdout, so the gate
compares like with like. Undefined ratios count as 0 (``zero_division=0``) rather than warning;
ROC AUC is NaN, with a note, when the holdout holds a single class.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

METRIC_NAMES = ("accuracy", "f1", "precision", "recall", "roc_auc")


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
    """Classification metrics of ``model`` on ``(X, y)``.

    Binary labels use the model's second class (``classes_[1]``, e.g. 1 or "yes") as positive;
    more than two classes use macro averages and one-vs-rest ROC AUC.
    """
    y_true = np.asarray(y)
    y_pred = np.asarray(model.predict(X))
    notes: list[str] = []
    model_classes = getattr(model, "classes_", None)
    classes = np.asarray(model_classes) if model_classes is not None else np.unique(np.concatenate([y_true, y_pred]))
    binary = len(classes) <= 2
    if binary:
        pos_label = classes[-1] if len(classes) else 1
        avg: dict[str, Any] = {"average": "binary", "pos_label": pos_label}
    else:
        avg = {"average": "macro", "labels": classes}
    values = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0, **avg)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0, **avg)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0, **avg)),
        "roc_auc": math.nan,
    }
    present = np.unique(y_true)
    if len(present) < 2:
        notes.append(f"roc_auc is undefined: the holdout holds a single class ({present.tolist()})")
    else:
        scores = _scores(model, X, classes)
        if scores is None:
            notes.append("roc_auc is undefined: the model has neither predict_proba nor decision_function")
        elif binary:
            values["roc_auc"] = float(roc_auc_score(y_true == classes[-1], scores))
        elif set(present) == set(classes):
            values["roc_auc"] = float(roc_auc_score(y_true, scores, multi_class="ovr", labels=classes))
        else:
            notes.append("roc_auc is undefined: the holdout lacks some of the model's classes")
    return Metrics(values, notes)


# Compute: no retries.
evaluate_model_task = task(evaluate_model, name="evaluate", cache_policy=NO_CACHE)

__all__ = ["METRIC_NAMES", "Metrics", "evaluate_model", "evaluate_model_task"]
