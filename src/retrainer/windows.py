"""Windows of logged predictions, and the read-only protocol that serves them.

This module is neutral ground: the SQL store implements :class:`WindowSource` and returns these
dataclasses; the trigger framework only reads them. Neither side imports the other.

Semantics every implementation follows (``retrainer.testing.InMemoryWindowSource`` is the reference):

* event windows are half-open: a prediction belongs to ``[start, end)`` when ``start <= ts < end``;
* ``as_of`` is point-in-time: a label counts only if it was *received* at or before ``as_of``
  (so a backtest at ``now`` never sees a label that arrived later);
* rows come back sorted by ``ts``; ``ts`` is ``numpy.datetime64`` in UTC without a timezone;
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
    """Feature values of the predictions in one window: one array per column, aligned with ``ts``."""

    ts: np.ndarray
    columns: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.ts))


@dataclass(frozen=True, eq=False)
class LabelledWindow:
    """Predictions in one window that had a label by ``as_of``, aligned arrays.

    ``score`` is NaN where the model gave no score. ``n_predictions`` counts every prediction in
    the window, labelled or not, so ``len(w) / w.n_predictions`` is the label coverage.
    """

    ts: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    score: np.ndarray
    n_predictions: int = 0

    def __len__(self) -> int:
        return int(len(self.y_true))


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
