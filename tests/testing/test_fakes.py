"""InMemoryWindowSource follows the store's window semantics exactly."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from retrainer.errors import StoreError
from retrainer.testing import DEFAULT_NOW, STANDARD_FEATURES, InMemoryWindowSource, make_context, standard_contexts

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
H = timedelta(hours=1)


def test_windows_are_half_open_and_sorted() -> None:
    src = InMemoryWindowSource({"ts": [T0 + 2 * H, T0, T0 + H, T0 + 3 * H], "x": [2.0, 0.0, 1.0, 3.0]})
    w = src.features_window("m", T0, T0 + 3 * H, ["x"])
    assert w.columns["x"].tolist() == [0.0, 1.0, 2.0]  # start included, end excluded, by time
    assert w.ts.dtype == np.float64 and w.ts.tolist() == [T0.timestamp() + 3600 * i for i in range(3)]
    assert w.prediction_ids.tolist() == [1, 2, 0]  # row positions in the source
    assert src.count_predictions("m", T0 + H, T0 + 3 * H) == 2
    with pytest.raises(StoreError, match="no feature column 'nope'"):
        src.features_window("m", T0, T0 + H, ["nope"])


def test_labels_count_from_their_arrival_inclusive() -> None:
    src = InMemoryWindowSource({
        "ts": [T0, T0 + H, T0 + 2 * H],
        "y_true": [1, None, 0],
        "y_pred": [1, 1, 1],
        "labelled_at": [T0 + 5 * H, T0 + 5 * H, T0 + 6 * H],
    })
    lab = src.labelled_window("m", T0, T0 + 3 * H, as_of=T0 + 5 * H)
    assert lab.y_true.tolist() == [1] and lab.n_predictions == 3 and np.isnan(lab.score).all()
    assert src.count_predictions("m", T0, T0 + 3 * H, labelled=True, as_of=T0 + 6 * H) == 2  # None is no label
    assert src.count_predictions("m", T0, T0 + 3 * H, labelled=True) == 2
    assert src.count_predictions("m", T0, T0 + 3 * H, labelled=True, as_of=T0 + 4 * H) == 0


def test_labels_without_arrival_time_are_known_at_prediction_time_and_empty_sources_work() -> None:
    src = InMemoryWindowSource({"ts": [T0], "y_true": [1], "y_pred": [0]})
    assert len(src.labelled_window("m", T0, T0 + H, as_of=T0)) == 1
    empty = InMemoryWindowSource()
    assert len(empty) == 0 and empty.count_predictions("m", T0, T0 + H) == 0
    assert len(empty.labelled_window("m", T0, T0 + H, as_of=T0 + H)) == 0


def test_standard_contexts_hide_the_future_rows_they_contain() -> None:
    ctxs = standard_contexts()
    assert list(ctxs) == ["normal", "drifted", "empty", "nan", "no_champion"]
    normal = ctxs["normal"]
    assert len(normal.source) > normal.count_since(timedelta(days=365))  # some rows lie after `now`
    w = normal.features(timedelta(days=1), list(STANDARD_FEATURES))
    assert w.ts.max() < DEFAULT_NOW.timestamp()
    assert ctxs["no_champion"].champion is None and ctxs["normal"].champion.version == "3"
    drifted = ctxs["drifted"].features(timedelta(days=1), ["x1"]).columns["x1"].mean()
    assert drifted > w.columns["x1"].mean() + 1.5


@settings(max_examples=60, deadline=None)
@given(
    offsets=st.lists(st.integers(min_value=-200, max_value=200), max_size=30),
    window=st.integers(min_value=1, max_value=150),
)
def test_context_sees_exactly_the_rows_in_window_before_now(offsets: list[int], window: int) -> None:
    now = T0 + timedelta(minutes=100)
    ts = [now + timedelta(minutes=o) for o in offsets]
    ctx = make_context({"ts": ts, "x": [float(o) for o in offsets]}, now=now)
    seen = sorted(ctx.features(timedelta(minutes=window), ["x"]).columns["x"].tolist())
    assert seen == sorted(float(o) for o in offsets if -window <= o < 0)
    assert ctx.count_since(timedelta(minutes=window)) == len(seen)
