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


__all__ = ["FeatureWindow", "LabelledWindow", "WindowSource"]
