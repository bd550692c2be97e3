"""The demo's volume-dependent settings: each window holds what it is sized to hold, checked by
counting the rows of the demo's own stream, and 200 requests a day gives the story's original figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from retrainer.demo.data import StreamSpec, generate_stream
from retrainer.demo.sizing import (
    MIN_TRAIN_ROWS,
    TRAIN_ROWS,
    WINDOW_PREDICTIONS,
    labelled_days_holding,
    size_for,
)


def _labelled_counts(rows_per_day: int, window_days: int) -> np.ndarray:
    """Brute force: at the end of each day, the rows of the trailing window whose label had arrived."""
    spec = StreamSpec(days=40, rows_per_day=rows_per_day, drift_day=None, seed=3)
    frame = generate_stream(spec)
    ends = [pd.Timestamp(spec.start) + pd.Timedelta(days=d) for d in range(window_days + 5, spec.days)]
    return np.array([((frame["ts"] >= end - pd.Timedelta(days=window_days)) & (frame["ts"] < end)
                      & (frame["label_ts"] < end)).sum() for end in ends])


@pytest.mark.parametrize("rows_per_day", [50, 80, 200, 2000])
def test_the_training_window_holds_the_labelled_rows_it_is_sized_for(rows_per_day: int) -> None:
    days = labelled_days_holding(TRAIN_ROWS, rows_per_day)
    counts = _labelled_counts(rows_per_day, days)
    # The closed form r * (W - mean delay) against the count, and the minimum the training asks for.
    assert counts.mean() == pytest.approx(rows_per_day * (days - 3.0), rel=0.03)
    assert counts.mean() >= TRAIN_ROWS * 0.97 and counts.min() >= MIN_TRAIN_ROWS
    # One day shorter would not hold them: the window is the shortest that does.
    if days > 5:
        assert _labelled_counts(rows_per_day, days - 1).mean() < TRAIN_ROWS


@pytest.mark.parametrize("rows_per_day", [50, 80, 200, 2000, 5000])
def test_every_window_holds_what_its_trigger_needs_and_none_grows_with_traffic(rows_per_day: int) -> None:
    size, more = size_for(rows_per_day), size_for(rows_per_day * 2)
    assert size.drift_days * rows_per_day >= WINDOW_PREDICTIONS
    assert size.performance_days * rows_per_day >= 250  # matured labels: min_labels 200 with room
    for name in ("train_days", "drift_days", "performance_days"):
        assert getattr(more, name) <= getattr(size, name), name


def test_at_200_a_day_the_story_keeps_its_original_settings() -> None:
    size = size_for(200)
    assert (size.train_days, size.min_rows, size.drift_days, size.performance_days) == (5, 300, 3, 7)
    assert size.shadow_comparisons == 100
    assert size_for(50).train_days == 11 and size_for(50).drift_days == 6
    assert (size_for(50).shadow_comparisons, size_for(50).shadow_days) == (100, 2)
    assert size_for(50).days_after_drift == 14 and size.days_after_drift == 13
