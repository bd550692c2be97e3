"""Models trained during a replay, cached by training window, and how each scores every step.

Every policy and the oracle ask this one cache, so a candidate trained at a step is trained once
whoever asks (``always`` and the oracle need one per step; the others reuse those). Training is
the real thing: :func:`retrainer.tasks.load.split_training_data` (time holdout) and
:func:`retrainer.tasks.train.train_model` with the configured estimator; the gate is the one
:func:`retrainer.metrics.gate` every decision uses, on the candidate's holdout with the champion scored by the same
:func:`retrainer.tasks.evaluate.evaluate_model`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from retrainer.config import RetrainerConfig
from retrainer.errors import InsufficientDataError
from retrainer.metrics import GateResult, classification_metrics, gate, metric_differences
from retrainer.profiles import build_reference_profile, profile_arrays
from retrainer.simulate.history import History, StepGrid
from retrainer.tasks.evaluate import evaluate_model
from retrainer.tasks.load import TrainingData, split_training_data
from retrainer.tasks.register import holdout_calibration
from retrainer.tasks.train import train_model


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A model trained at step ``step`` on the rows visible at ``trained_at``."""

    version: str
    step: int
    trained_at: datetime
    estimator: Any
    data: TrainingData
    holdout_metrics: Mapping[str, float]
    train_seconds: float  # measured, for the bench only: no decision reads wall-clock time

    @property
    def positive_label(self) -> float:
        classes = getattr(self.estimator, "classes_", None)
        return float(classes[-1]) if classes is not None and len(classes) else 1.0


@dataclass
class CacheStats:
    trained: int = 0
    failed: int = 0
    hits: int = 0
    train_seconds: float = 0.0


class ModelCache:
    """Trains on demand, once per training window; scores each model on the steps it may serve."""

    def __init__(self, history: History, grid: StepGrid, cfg: RetrainerConfig, *, train_window: timedelta | None) -> None:
        self.history, self.grid, self.cfg, self.train_window = history, grid, cfg, train_window
        self._models: dict[tuple[float, float], TrainedModel | InsufficientDataError] = {}
        self._predictions: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._errors: dict[str, np.ndarray] = {}
        self._gates: dict[tuple[str, str], GateResult] = {}
        self._champion_holdout: dict[tuple[str, str], Mapping[str, float]] = {}
        self._references: dict[str, dict[str, Any]] = {}
        self.stats = CacheStats()
        # Labelled rows per step: the denominators of the realized metric.
        self.step_rows = _per_step(~np.isnan(history.y), grid.rows)

    def _key(self, at: datetime) -> tuple[float, float]:
        start = -math.inf if self.train_window is None else at.timestamp() - self.train_window.total_seconds()
        return (start, at.timestamp())

    def at_step(self, k: int) -> TrainedModel:
        """The model a retrain at step ``k`` produces; raises InsufficientDataError (cached too)."""
        at = self.grid.instants[k]
        key = self._key(at)
        if key in self._models:
            self.stats.hits += 1
        else:
            self._models[key] = self._train(k, at)
        found = self._models[key]
        if isinstance(found, InsufficientDataError):
            raise found
        return found

    def trainable(self, k: int) -> bool:
        try:
            self.at_step(k)
        except InsufficientDataError:
            return False
        return True

    def _train(self, k: int, at: datetime) -> TrainedModel | InsufficientDataError:
        data_cfg = self.cfg.data
        rows = self.history.training_rows(at, self.train_window)
        span = (f"between {(at - self.train_window).isoformat()} and {at.isoformat()}" if self.train_window
                else f"before {at.isoformat()}")
        try:
            data = split_training_data(rows, data_cfg, span=span)
        except InsufficientDataError as exc:
            self.stats.failed += 1
            return exc
        began = time.perf_counter()
        estimator = train_model(self.cfg.estimator, data_cfg.features, data)
        seconds = time.perf_counter() - began
        self.stats.trained += 1
        self.stats.train_seconds += seconds
        metrics = dict(evaluate_model(estimator, data.X_holdout, data.y_holdout))
        return TrainedModel(f"s{k}", k, at, estimator, data, metrics, seconds)

    # -- scoring ---------------------------------------------------------------------------------

    def predictions(self, model: TrainedModel) -> tuple[np.ndarray, np.ndarray]:
        """Labels and positive-class scores of ``model`` for the rows of its step to the end."""
        if model.version not in self._predictions:
            part = slice(int(self.grid.rows[model.step]), int(self.grid.rows[-1]))
            X = self.history.frame.iloc[part][self.cfg.data.feature_names]
            if len(X):
                y_pred = np.asarray(model.estimator.predict(X), dtype=np.float64)
                score = _scores(model.estimator, X)
            else:
                y_pred = score = np.zeros(0)
            self._predictions[model.version] = (y_pred, score)
        return self._predictions[model.version]

    def _rows_of(self, model: TrainedModel, k: int) -> slice:
        offset = int(self.grid.rows[model.step])
        return slice(int(self.grid.rows[k]) - offset, int(self.grid.rows[k + 1]) - offset)

    def step_predictions(self, model: TrainedModel, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k < model.step:
            raise ValueError(f"model {model.version} did not exist at step {k}")
        y_pred, score = self.predictions(model)
        part = self._rows_of(model, k)
        return y_pred[part], score[part]

    def step_errors(self, model: TrainedModel) -> np.ndarray:
        """Wrong predictions of ``model`` per step (int64, length S; zero before it existed)."""
        if model.version not in self._errors:
            y_pred, _ = self.predictions(model)
            start = int(self.grid.rows[model.step])
            y = self.history.y[start:int(self.grid.rows[-1])]
            wrong = np.zeros(len(self.history), bool)
            wrong[start:int(self.grid.rows[-1])] = ~np.isnan(y) & (y_pred != y)
            out = _per_step(wrong, self.grid.rows)
            out[: model.step] = 0
            self._errors[model.version] = out
        return self._errors[model.version]

    def step_metrics(self, model: TrainedModel, k: int) -> dict[str, float]:
        """The five classification metrics of ``model`` on step ``k``'s labelled rows (NaN: undefined)."""
        y_pred, score = self.step_predictions(model, k)
        y = self.history.y[self.grid.step_slice(k)]
        known = ~np.isnan(y)
        if not known.any():
            return {m: math.nan for m in ("accuracy", "f1", "precision", "recall", "roc_auc")}
        raw = classification_metrics(y[known], y_pred[known], score[known], model.positive_label)
        return {m: math.nan if v is None else float(v) for m, v in raw.items()}

    # -- gate and reference ----------------------------------------------------------------------

    def _champion_on_holdout(self, candidate: TrainedModel, champion: TrainedModel) -> Mapping[str, float]:
        """The champion's metrics on the candidate's holdout rows (what the gate compares)."""
        key = (candidate.version, champion.version)
        if key not in self._champion_holdout:
            data = candidate.data
            self._champion_holdout[key] = evaluate_model(champion.estimator, data.X_holdout, data.y_holdout)
        return self._champion_holdout[key]

    def gate(self, candidate: TrainedModel, champion: TrainedModel) -> GateResult:
        """The configured gate: candidate vs champion on the candidate's holdout."""
        key = (candidate.version, champion.version)
        if key not in self._gates:
            self._gates[key] = gate(candidate.holdout_metrics, self._champion_on_holdout(candidate, champion),
                                    self.cfg.gate)
        return self._gates[key]

    def offline_delta(self, candidate: TrainedModel, champion: TrainedModel) -> dict[str, float]:
        """Δ_off per metric: candidate − champion on the same rows, the candidate's holdout — the
        paired difference the retrain flow records (undefined metrics left out)."""
        return metric_differences(candidate.holdout_metrics, self._champion_on_holdout(candidate, champion))

    def reference(self, model: TrainedModel) -> dict[str, Any]:
        """The reference profile registration would store for ``model``: its holdout metrics and the
        calibration map of its holdout scores (``holdout_calibration``, the registration's own function)."""
        if model.version not in self._references:
            profile = build_reference_profile(
                model.data.X_train, self.cfg.data.features, model_version=model.version,
                registered_at=model.trained_at,
            )
            profile["holdout_metrics"] = {k: v for k, v in model.holdout_metrics.items() if not math.isnan(v)}
            # As registration does: the map estimated_performance (and cost_benefit without labels)
            # turns this model's logged scores into probabilities with.
            profile["calibration"] = holdout_calibration(model.estimator, model.data.X_holdout, model.data.y_holdout)
            self._references[model.version] = profile_arrays(profile)
        return self._references[model.version]


def _per_step(flags: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """How many ``flags`` are set in each step's rows ``rows[k]:rows[k + 1]``."""
    cum = np.concatenate([[0], np.cumsum(flags, dtype=np.int64)])
    return cum[rows[1:]] - cum[rows[:-1]]


def _scores(estimator: Any, X: Any) -> np.ndarray:
    if hasattr(estimator, "predict_proba"):
        proba = np.asarray(estimator.predict_proba(X), dtype=np.float64)
        if proba.ndim == 2 and proba.shape[1] == 2:
            return proba[:, 1]
    return np.full(len(X), np.nan)


__all__ = ["CacheStats", "ModelCache", "TrainedModel"]
