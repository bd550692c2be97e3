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
*finished* at or before ``as_of``, most recent first. Likewise optional, a :class:`LabelDelaySource`
measures how late the model's labels come (:class:`LabelDelay`, from labels arrived by ``as_of``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import numpy as np

from retrainer.durations import format_duration


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


@dataclass(frozen=True, eq=False)
class HistogramWindow:
    """Feature counts kept at ingest over ``[start, end)`` (epoch seconds, whole time buckets),
    on the frozen bins of champion ``version``: ``bins`` and ``histograms`` per feature are
    :mod:`retrainer.stats.histogram` objects (typed loosely here: this module is the base layer).
    ``registered_at``: the version's registration time (epoch seconds) when known."""

    start: float
    end: float
    version: str
    bins: Mapping[str, Any]
    histograms: Mapping[str, Any]
    registered_at: float | None = None

    @property
    def n_rows(self) -> int:
        """Rows counted (the largest n + nulls over the features)."""
        return max((int(h.n + h.nulls) for h in self.histograms.values()), default=0)


@dataclass(frozen=True)
class RetrainRecord:
    """One past retrain that trained a model, as a trigger sees it.

    ``at`` is when the run finished (its outcome was known from then on, tz-aware);
    ``metrics`` are the fresh candidate's holdout metrics (accuracy, f1, ...), whatever the gate
    then decided; ``duration_s`` is the run's measured duration in seconds (None when unknown).
    ``offline_delta`` is the paired difference the run measured, candidate − champion on the same
    holdout rows, per metric (None when unknown: no champion then, or an older run);
    ``champion_since`` when the champion it was compared with started serving (None when unknown),
    so ``at − champion_since`` is that champion's age when the difference was measured.
    """

    at: datetime
    metrics: Mapping[str, float] = field(default_factory=dict)
    duration_s: float | None = None
    status: str = "success"
    version: str | None = None
    offline_delta: Mapping[str, float] | None = None
    champion_since: datetime | None = None

    def metric(self, name: str) -> float | None:
        """The candidate's holdout ``name``, or None when the run did not record it."""
        value = self.metrics.get(name)
        return None if value is None else float(value)


@dataclass(frozen=True)
class LabelDelay:
    """How late a model's labels come: (label time - prediction time) of recently arrived labels.

    Measured over the labels that *arrived* in the ``lookback`` before ``as_of`` (the newest
    ``n`` of them, capped by the source): with steady traffic that is an unbiased sample of the
    delay, whereas the labelled predictions *made* recently would over-represent quick labels
    (the slow ones have not come back yet). ``p50``/``p95`` are empirical quantiles in the
    inverted-CDF sense (the smallest delay by which that share of the labels had arrived); None
    when no label arrived. ``share_labelled`` is the share of the predictions made in the
    lookback whose label had arrived by ``as_of`` (``n_predictions`` of them).
    """

    as_of: datetime
    lookback: timedelta
    n: int
    p50: timedelta | None
    p95: timedelta | None
    share_labelled: float
    n_predictions: int

    @classmethod
    def from_delays(
        cls, delays_s: np.ndarray, *, as_of: datetime, lookback: timedelta, n_predictions: int, n_labelled: int
    ) -> LabelDelay:
        """Summarise delays in seconds (one per arrived label); ``n_labelled`` of the
        ``n_predictions`` made in the lookback were labelled by ``as_of``."""
        d = np.sort(np.asarray(delays_s, dtype=np.float64))
        d = d[np.isfinite(d)]

        def q(share: float) -> timedelta | None:
            if not d.size:
                return None
            # Inverted CDF: the k-th smallest with k = ceil(share * n) (Hyndman & Fan type 1).
            k = max(int(np.ceil(share * d.size - 1e-9)), 1)
            return timedelta(seconds=float(d[k - 1]))

        share = n_labelled / n_predictions if n_predictions else 0.0
        return cls(as_of=as_of, lookback=lookback, n=int(d.size), p50=q(0.50), p95=q(0.95),
                   share_labelled=float(share), n_predictions=int(n_predictions))

    def to_dict(self) -> dict[str, object]:
        """JSON-ready: seconds for the quantiles, ISO time for ``as_of``."""
        return {
            "as_of": self.as_of.isoformat(),
            "lookback_s": self.lookback.total_seconds(),
            "n": self.n,
            "p50_s": None if self.p50 is None else self.p50.total_seconds(),
            "p95_s": None if self.p95 is None else self.p95.total_seconds(),
            "share_labelled": self.share_labelled,
            "n_predictions": self.n_predictions,
        }


@dataclass(frozen=True)
class EvidenceWindow:
    """The window a trigger judged, ``[start, end)``, and why it starts where it does.

    With ``window: auto`` a trigger reads back from ``end`` until it holds ``min_samples`` (the
    shortest such trailing window), but never past ``max_window`` nor before the champion was
    deployed (``floor``). ``limit`` says which of these set ``start``: ``"count"`` (enough samples),
    ``"max_window"``, ``"deployment"``; a fixed ``window:`` is ``"fixed"``. ``what`` names the
    samples ("labelled predictions", "predictions") for the reasons people read.
    """

    start: datetime
    end: datetime
    n: int
    min_samples: int
    limit: str
    what: str = "predictions"
    max_window: timedelta | None = None
    floor: datetime | None = None

    @property
    def span(self) -> timedelta:
        return self.end - self.start

    @property
    def enough(self) -> bool:
        return self.n >= self.min_samples

    def to_dict(self) -> dict[str, object]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "span_s": self.span.total_seconds(),
                "n": self.n, "min_samples": self.min_samples, "limit": self.limit, "what": self.what,
                "max_window_s": None if self.max_window is None else self.max_window.total_seconds(),
                "floor": None if self.floor is None else self.floor.isoformat()}

    def describe(self) -> str:
        """For reasons: "the 12.5d window ending 2025-03-01 (140 labelled predictions; 147 needed)"."""
        seconds = self.span.total_seconds()
        span = next((f"{seconds / size:.3g}{unit}" for unit, size in (("d", 86400), ("h", 3600), ("m", 60))
                     if seconds >= size), f"{seconds:.0f}s")
        why = {"max_window": f"; capped at max_window {format_duration(self.max_window) if self.max_window else ''}",
               "deployment": f"; starts at the champion's deployment {self.start:%Y-%m-%d %H:%M}",
               }.get(self.limit, "")
        return (f"the {span} window ending {self.end:%Y-%m-%d %H:%M} ({self.n} {self.what}; "
                f"min_samples {self.min_samples}{why})")


def shortest_span(count: Callable[[datetime], int], end: datetime, min_samples: int, earliest: datetime) -> timedelta:
    """A span ``s`` with ``count(end - s) >= min_samples`` found by doubling from a minute, at most
    ``end - earliest`` (where it stops, enough or not). ``count(start)`` counts samples in ``[start, end)``
    and grows as ``start`` moves back, so the answer is at most twice the shortest such span: the
    caller reads that much and keeps the newest ``min_samples`` (the exact shortest window). About
    log2(limit / 1 minute) count queries at most: 16 for a 30-day limit."""
    limit = end - earliest
    if limit <= timedelta(0):
        return timedelta(0)
    span = min(timedelta(minutes=1), limit)
    while span < limit and count(end - span) < min_samples:
        span = min(span * 2, limit)
    return span


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


@runtime_checkable
class ScoredWindowSource(Protocol):
    """A :class:`WindowSource` that serves every prediction of a window, labelled or not (optional).

    ``scored_window`` returns a :class:`LabelledWindow` of all the window's predictions, with
    ``y_true`` NaN where the label had not arrived by ``as_of``: what label-free performance
    estimation reads (the model's scores, and the realized labels that replace them).
    """

    def scored_window(
        self, model_name: str, start: datetime, end: datetime, *, as_of: datetime, model_version: str | None = None
    ) -> LabelledWindow: ...


@runtime_checkable
class LabelDelaySource(Protocol):
    """A :class:`WindowSource` that can measure the model's label delay (the store, the fakes).

    Optional, like :class:`RetrainHistorySource`: a source without it has no delay to report.
    Only labels that arrived in ``(as_of - lookback, as_of]`` count (no look-ahead).
    """

    def label_delay(self, model_name: str, *, as_of: datetime, lookback: timedelta) -> LabelDelay: ...




@runtime_checkable
class HistogramSource(Protocol):
    """A :class:`WindowSource` that keeps feature counts at ingest (the SQL store; optional).

    ``feature_histograms`` answers the counts of the whole time buckets inside ``[start, end)``
    on champion ``version``'s frozen bins, or None when it has none covering that window (the
    caller then reads raw values)."""

    def feature_histograms(
        self, model_name: str, version: str, start: datetime, end: datetime, columns: Sequence[str] | None = None
    ) -> HistogramWindow | None: ...


__all__ = ["EvidenceWindow", "FeatureWindow", "HistogramSource", "HistogramWindow", "LabelDelay", "LabelDelaySource", "LabelledWindow",
           "RetrainHistorySource", "RetrainRecord",
           "ScoredWindowSource", "WindowSource", "shortest_span"]
