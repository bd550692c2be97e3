"""The store's label delay: selected by arrival, clamped at as_of, quantiles by the textbook rule."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np

from retrainer.store import LabelRecord, Store
from retrainer.testing import InMemoryWindowSource
from retrainer.windows import LabelDelay

from .conftest import SPECS, T0, record

H = timedelta(hours=1)
D = timedelta(days=1)


def _inverted_cdf(values: list[float], share: float) -> float:
    """Hyndman & Fan type 1, written out: the ceil(share * n)-th smallest value."""
    ordered = sorted(values)
    return ordered[math.ceil(share * len(ordered)) - 1]


def _log(store: Store, delays_h: list[float]) -> None:
    """Prediction i at T0 + i hours; its label arrives delays_h[i] hours later."""
    store.log_predictions("m", [record(i, minutes=60 * i) for i in range(len(delays_h))], SPECS)
    store.log_labels([LabelRecord(f"req-{i}", 1.0, T0 + i * H + d * H) for i, d in enumerate(delays_h)])


def test_quantiles_of_the_labels_that_arrived_by_as_of(store: Store) -> None:
    rng = np.random.default_rng(3)
    delays = rng.uniform(1, 72, size=300).round(3).tolist()
    _log(store, delays)
    as_of = T0 + 250 * H
    got = store.label_delay("m", as_of=as_of, lookback=10 * D)
    arrived = [d for i, d in enumerate(delays) if i + d <= 250 and i + d > 250 - 240]
    assert got.n == len(arrived) > 100
    assert got.p50 is not None and got.p95 is not None
    assert abs(got.p50.total_seconds() - _inverted_cdf(arrived, 0.50) * 3600) < 1e-3
    assert abs(got.p95.total_seconds() - _inverted_cdf(arrived, 0.95) * 3600) < 1e-3
    made = [i for i in range(300) if 250 - 240 <= i < 250]
    labelled = [i for i in made if i + delays[i] <= 250]
    assert got.n_predictions == len(made)
    assert got.share_labelled == len(labelled) / len(made)
    # No look-ahead: at an earlier instant the later arrivals do not exist.
    early = store.label_delay("m", as_of=T0 + 10 * H, lookback=10 * D)
    assert early.n == sum(1 for i, d in enumerate(delays) if i + d <= 10)


def test_fixed_delay_is_measured_exactly_and_unlabelled_rows_lower_the_share(store: Store) -> None:
    _log(store, [14 * 24.0] * 200)  # every label 14 days late
    got = store.label_delay("m", as_of=T0 + 400 * H, lookback=30 * D)
    assert got.p50 == got.p95 == timedelta(days=14)
    # Predictions of the last 14 days (hours 64..199 of the 200) have no label yet.
    assert got.n_predictions == 200 and math.isclose(got.share_labelled, (400 - 336 + 1) / 200)


def test_no_labels_means_no_quantiles(store: Store) -> None:
    store.log_predictions("m", [record(i) for i in range(5)], SPECS)
    got = store.label_delay("m", as_of=T0 + D, lookback=30 * D)
    assert (got.n, got.p50, got.p95, got.share_labelled, got.n_predictions) == (0, None, None, 0.0, 5)
    assert store.stats()["label_delay"] == {"m": None}


def test_stats_show_the_delay_as_of_the_newest_label(store: Store) -> None:
    _log(store, [48.0] * 20)
    delay = store.stats()["label_delay"]["m"]
    assert delay["p50_s"] == delay["p95_s"] == 48 * 3600
    assert delay["n"] == 20 and delay["as_of"] == (T0 + 19 * H + 48 * H).isoformat()


def test_the_fake_source_agrees_with_the_store(store: Store) -> None:
    rng = np.random.default_rng(5)
    delays = rng.exponential(30, size=200).round(3).tolist()
    _log(store, delays)
    fake = InMemoryWindowSource({
        "ts": [T0 + i * H for i in range(200)], "model_name": "m", "y_true": 1.0, "y_pred": 1.0,
        "labelled_at": [T0 + i * H + d * H for i, d in enumerate(delays)],
    })
    as_of, lookback = T0 + 150 * H, 5 * D
    a, b = store.label_delay("m", as_of=as_of, lookback=lookback), fake.label_delay("m", as_of=as_of, lookback=lookback)
    assert isinstance(b, LabelDelay)
    assert (a.n, a.n_predictions, a.share_labelled) == (b.n, b.n_predictions, b.share_labelled)
    assert a.p50 is not None and b.p50 is not None and a.p95 is not None and b.p95 is not None
    assert abs((a.p50 - b.p50).total_seconds()) < 1e-3 and abs((a.p95 - b.p95).total_seconds()) < 1e-3
