"""The prediction log a policy would have produced, written step by step as the replay advances.

A :class:`ReplaySource` is :class:`retrainer.testing.InMemoryWindowSource` (the store's exact
window semantics: half-open windows, labels visible only once arrived) over the whole history,
whose ``y_pred`` / ``score`` / ``model_version`` are filled in as each step is served by the
model deployed then, and whose retrain history grows with each simulated retrain. Rows after the
current step are in memory but unreachable: the :class:`~retrainer.triggers.TriggerContext`
clamps every read at its ``now``, and their predictions are not even written yet.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from retrainer.simulate.history import History
from retrainer.testing.fakes import InMemoryWindowSource
from retrainer.windows import RetrainRecord


class ReplaySource(InMemoryWindowSource):
    """One policy's simulated inference log (a :class:`~retrainer.windows.RetrainHistorySource`)."""

    def __init__(self, history: History) -> None:
        data = history.data
        frame = pd.DataFrame({
            "ts": history.frame[data.timestamp_column].to_numpy(),
            "model_version": np.full(len(history), None, dtype=object),
            "y_true": history.y,
            "labelled_at": pd.to_datetime(history.labelled_at, unit="s", utc=True),
        })
        for name in data.feature_names:
            frame[name] = history.frame[name].to_numpy()
        super().__init__(frame)

    def record_predictions(self, rows: slice, y_pred: np.ndarray, score: np.ndarray, version: str) -> None:
        """The deployed ``version`` answered the requests of ``rows``."""
        self._y_pred[rows] = y_pred
        self._score[rows] = score
        self._version[rows] = version

    def record_retrain(self, record: RetrainRecord) -> None:
        self._retrains = (*self._retrains, record)


__all__ = ["ReplaySource"]
