"""Windows of logged predictions, and the read-only protocol that serves them.

This module is neutral ground: the SQL store implements :class:`WindowSource` and returns these
dataclasses; the trigger framework only reads them. Neither side imports the other.

Semantics every implementation follows (``retrainer.testing.InMemoryWindowSource`` is the reference):

* event windows are half-open: a prediction belongs to ``[start, end)`` when ``start <= ts < end``;
* ``as_of`` is point-in-time: a label counts only if it was *received* at or before ``as_of``
  (so a backtest at ``now`` never sees a label that arrived later);
* rows come back sorted by ``ts``; ``ts`` is float64 epoch seconds (no timezone to get wrong);
* numeric columns are float64 (NaN = missing), categorical ones object arrays (None = missing);
* all datetimes passed in are timezone-aware.

A source may also know the model's past retrains (:class:`RetrainHistorySource`, optional so
that sources written before it keep working): ``retrain_history`` returns the runs that had
*finished* at or before ``as_of``, most recent first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True, eq=False)
class FeatureWindow:
    """Feature columns of the predictions in one window, aligned with ``ts`` and ordered by it.

    ``prediction_ids`` joins rows back to the store's predictions (None when there is no store).
    """

    ts: np.ndarray
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)
    prediction_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return int(np.shape(self.ts)[0])


@dataclass(frozen=True, eq=False)
class LabelledWindow:
    """Predictions in one window whose label was known at ``as_of``, as aligned arrays.

    ``score`` is NaN where the model gave no score. ``n_predictions`` counts every prediction in
    the window, labelled or not.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    score: np.ndarray
    ts: np.ndarray
    n_predictions: int

    def __len__(self) -> int:
        return int(np.shape(self.y_true)[0])

    @property
    def coverage(self) -> float:
        """Share of the window's predictions that are labelled (0 when there are none)."""
        return len(self) / self.n_predictions if self.n_predictions else 0.0


@dataclass(frozen=True)
class RetrainRecord:
    """One past retrain that trained a model, as a trigger sees it.

    ``at`` is when the run finished (its outcome was known from then on, tz-aware);
    ``metrics`` are the fresh candidate's holdout metrics (accuracy, f1, ...), whatever the gate
    then decided; ``duration_s`` is the run's measured duration in seconds (None when unknown).
    """

    at: datetime
    metrics: Mapping[str, float] = field(default_factory=dict)
    duration_s: float | None = None
    status: str = "success"
    version: str | None = None

    def metric(self, name: str) -> float | None:
        """The candidate's holdout ``name``, or None when the run did not record it."""
        value = self.metrics.get(name)
        return None if value is None else float(value)


@runtime_checkable
class WindowSource(Protocol):
    """What a trigger may read from the store. Read-only; every call is a pure query."""

    def features_window(
        self, model_name: str, start: datetime, end: datetime, columns: Sequence[str]
    ) -> FeatureWindow: ...

    def labelled_window(
        self,
        model_name: str,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime,
        model_version: str | None = None,
    ) -> LabelledWindow: ...

    def count_predictions(
        self,
        model_name: str,
        since: datetime,
        until: datetime,
        *,
        labelled: bool = False,
        as_of: datetime | None = None,
    ) -> int: ...


@runtime_checkable
class RetrainHistorySource(Protocol):
    """A :class:`WindowSource` that also knows past retrains (the store, the fakes, the simulator).

    Only runs that trained a model count (success, no_improvement, superseded), and only those
    finished at or before ``as_of``; most recent first, at most ``limit``.
    """

    def retrain_history(self, model_name: str, *, as_of: datetime, limit: int = 10) -> Sequence[RetrainRecord]: ...


__all__ = ["FeatureWindow", "LabelledWindow", "RetrainHistorySource", "RetrainRecord", "WindowSource"]
