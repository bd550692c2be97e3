"""window: auto — the shortest trailing window holding min_samples, bounded, never looking ahead."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from retrainer.testing import InMemoryWindowSource
from retrainer.triggers.context import ChampionInfo, TriggerContext
from retrainer.triggers.performance import PerformanceTrigger

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def daily_log(per_day: int, days: int, *, accuracy: float = 0.9, seed: int = 0, end: datetime = NOW,
              label_delay: timedelta = timedelta(0)) -> pd.DataFrame:
    """``per_day`` predictions a day, evenly spaced, for ``days`` days before ``end``."""
    rng = np.random.default_rng(seed)
    n = per_day * days
    ts = pd.Timestamp(end - days * DAY) + pd.to_timedelta((np.arange(n) + 0.5) * 86400 / per_day, unit="s")
    y = rng.integers(0, 2, n).astype(float)
    pred = np.where(rng.random(n) < accuracy, y, 1 - y)
    return pd.DataFrame({"ts": ts, "y_true": y, "y_pred": pred, "score": np.where(pred == 1, 0.8, 0.2),
                         "labelled_at": ts + label_delay, "x": rng.normal(size=n)})


def ctx(frame, now=NOW, deployed=None) -> TriggerContext:
    champion = None if deployed is None else ChampionInfo("v1", created_at=deployed)
    return TriggerContext(model_name="m", now=now, source=InMemoryWindowSource(frame), champion=champion)


@pytest.mark.parametrize("per_day,need", [(5, 40), (10, 147), (500, 147), (50_000 // 24, 300)])
def test_the_window_grows_exactly_to_the_count(per_day, need):
    frame = daily_log(per_day, 60)
    w, span = ctx(frame).labelled_auto(need, timedelta(days=90))
    assert span.limit == "count" and span.n == len(w) == need
    # Independently: the need-th newest prediction starts the window.
    newest = frame["ts"].sort_values().iloc[-need]
    gap_s = newest.timestamp() - span.start.timestamp()  # the start is floored to a datetime's microsecond
    assert 0 <= gap_s < 2e-6 and span.end == NOW
    assert w.n_predictions == need  # every prediction labelled: coverage 1
    assert span.span == pytest.approx(timedelta(days=need / per_day) - timedelta(days=0.5 / per_day), abs=timedelta(seconds=1))


def test_the_window_stops_at_max_window_and_says_so():
    frame = daily_log(5, 60)
    w, span = ctx(frame).labelled_auto(200, timedelta(days=20))
    assert span.limit == "max_window" and not span.enough
    assert span.n == len(w) == 100 and span.start == NOW - timedelta(days=20)
    assert "100 labelled predictions; min_samples 200; capped at max_window 20d" in span.describe()


def test_the_window_never_reaches_before_the_champions_deployment():
    frame = daily_log(10, 60)
    w, span = ctx(frame, deployed=NOW - timedelta(days=5)).labelled_auto(147, timedelta(days=90))
    assert span.limit == "deployment" and span.start == NOW - timedelta(days=5) and span.n == len(w) == 50
    assert (np.asarray(w.ts) >= (NOW - timedelta(days=5)).timestamp()).all()


def test_the_window_never_looks_ahead():
    past = daily_log(10, 60)
    future = daily_log(10, 30, end=NOW + timedelta(days=30), accuracy=0.0, seed=9)
    late = daily_log(10, 3, seed=4, label_delay=timedelta(days=10))  # made before now, labelled after
    both = pd.concat([past, future, late.assign(ts=late["ts"] - timedelta(days=0.01))])
    w, span = ctx(both).labelled_auto(147, timedelta(days=90))
    alone, span_alone = ctx(past).labelled_auto(147, timedelta(days=90))
    assert (np.asarray(w.ts) < NOW.timestamp()).all() and span == span_alone
    np.testing.assert_array_equal(np.asarray(w.y_pred), np.asarray(alone.y_pred))


def test_features_and_scored_windows_count_predictions_not_labels():
    frame = daily_log(10, 60, label_delay=timedelta(days=30))  # no label of the last 30 days is in
    c = ctx(frame)
    feats, span = c.features_auto(200, timedelta(days=90), ["x"])
    assert span.limit == "count" and len(feats) == 200 and span.what == "predictions"
    scored, span_s = c.scored_auto(200, timedelta(days=90))
    assert len(scored) == 200 and np.isnan(np.asarray(scored.y_true)).all()
    labelled, span_l = c.labelled_auto(200, timedelta(days=90))
    assert span_l.start < NOW - timedelta(days=30)  # had to read back past the unlabelled month


def test_performance_reason_names_the_window_and_count_when_it_cannot_decide():
    d = PerformanceTrigger().evaluate(ctx(daily_log(1, 60)))
    assert d.status == "insufficient_data"
    assert d.evidence["window"]["n"] == 60 and d.evidence["window"]["limit"] == "max_window"
    assert "(60 labelled predictions; min_samples 262; capped at max_window 90d)" in d.reason
