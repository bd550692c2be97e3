"""Everything a trigger may know at one instant, and nothing after it.

A :class:`TriggerContext` is pinned to ``now``. Its read methods clamp every query to end at
``now`` and ask for labels ``as_of=now``; that single rule is what makes a backtest honest (the
same trigger code, replayed at past instants, cannot peek at the future). Reads are lazy, so a
trigger that needs no data costs no query, and cached per context, so three triggers reading
the same window cost one query. Returned arrays are read-only: triggers share them.

>>> from datetime import datetime, timezone
>>> ctx = TriggerContext(model_name="churn", now=datetime(2025, 1, 1, tzinfo=timezone.utc))
>>> ctx.champion is None, ctx.now.isoformat()
(True, '2025-01-01T00:00:00+00:00')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from retrainer.champion_info import ChampionInfo
from retrainer.champion_info import utc_aware as _utc
from retrainer.errors import TriggerError
from retrainer.frozen import FrozenDict, deep_freeze, readonly_array
from retrainer.windows import (
    EvidenceWindow,
    FeatureWindow,
    HistogramSource,
    HistogramWindow,
    LabelDelay,
    LabelDelaySource,
    LabelledWindow,
    RetrainHistorySource,
    RetrainRecord,
    ScoredWindowSource,
    WindowSource,
    shortest_span,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
AUTO = "auto"  # ``window: auto``: read back until the window holds min_samples (see TriggerContext.labelled_auto)


def _clamped(raw: LabelledWindow, end: datetime, *, n_predictions: int | None = None) -> LabelledWindow:
    """``raw`` without rows at or after ``end`` (a source may over-return), as read-only arrays;
    ``n_predictions`` defaults to the rows kept."""
    keep = _before(raw.ts, end)
    return LabelledWindow(
        ts=readonly_array(np.asarray(raw.ts)[keep]),
        y_true=readonly_array(np.asarray(raw.y_true)[keep]),
        y_pred=readonly_array(np.asarray(raw.y_pred)[keep]),
        score=readonly_array(np.asarray(raw.score)[keep]),
        n_predictions=int(np.count_nonzero(keep)) if n_predictions is None else n_predictions,
    )


def _trim(raw: Any, keep: np.ndarray) -> Any:
    """``raw`` (a LabelledWindow or FeatureWindow) restricted to the rows ``keep``, read-only."""
    if isinstance(raw, FeatureWindow):
        ids = raw.prediction_ids
        return FeatureWindow(ts=readonly_array(np.asarray(raw.ts)[keep]),
                             columns=FrozenDict({c: readonly_array(np.asarray(v)[keep]) for c, v in raw.columns.items()}),
                             prediction_ids=None if ids is None else readonly_array(np.asarray(ids)[keep]))
    return LabelledWindow(
        ts=readonly_array(np.asarray(raw.ts)[keep]), y_true=readonly_array(np.asarray(raw.y_true)[keep]),
        y_pred=readonly_array(np.asarray(raw.y_pred)[keep]), score=readonly_array(np.asarray(raw.score)[keep]),
        n_predictions=int(np.count_nonzero(keep)),  # labelled_auto recounts all predictions of its span
    )


def _before(ts: np.ndarray, end: datetime) -> np.ndarray:
    """Mask of rows strictly before ``end``: guards against a source that ignores ``end``.

    ``ts`` is epoch seconds by contract; numpy datetime64 (UTC) is accepted too.
    """
    ts = np.asarray(ts)
    if np.issubdtype(ts.dtype, np.datetime64):
        return ts < np.datetime64(end.replace(tzinfo=None), "us")
    return ts.astype(np.float64) < end.timestamp()


@dataclass(frozen=True)
class TriggerContext:
    """Read-only view of one model's world at ``now`` (timezone-aware, normalised to UTC)."""

    model_name: str
    now: datetime
    source: WindowSource | None = field(default=None, repr=False)
    last_retrain_at: datetime | None = None
    champion: ChampionInfo | None = None
    reference: Mapping[str, Any] | None = field(default=None, repr=False)
    # Per-context memo of reads; excluded from equality so two contexts at the same instant compare equal.
    _cache: dict[tuple[Any, ...], Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "now", _utc(self.now, "TriggerContext.now"))
        object.__setattr__(self, "last_retrain_at", _utc(self.last_retrain_at, "TriggerContext.last_retrain_at"))
        if self.reference is not None:
            object.__setattr__(self, "reference", deep_freeze(self.reference))

    def _source(self) -> WindowSource:
        if self.source is None:
            raise TriggerError(f"the context for {self.model_name!r} has no window source: it cannot read the store")
        return self.source

    def _memo(self, key: tuple[Any, ...], load: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = load()
        return self._cache[key]

    def _start(self, window: timedelta) -> datetime:
        if not isinstance(window, timedelta) or window <= timedelta(0):
            raise ValueError(f"window must be a positive timedelta, got {window!r}")
        return self.now - window

    def features(self, window: timedelta, columns: Sequence[str]) -> FeatureWindow:
        """Feature values of predictions made in ``[now - window, now)``."""
        cols = (columns,) if isinstance(columns, str) else tuple(columns)
        return self._features_between(self._start(window), self.now, cols)

    def _features_between(self, start: datetime, end: datetime, cols: tuple[str, ...]) -> FeatureWindow:
        def load() -> FeatureWindow:
            raw = self._source().features_window(self.model_name, start, end, cols)
            keep = _before(raw.ts, end)
            ids = getattr(raw, "prediction_ids", None)
            return FeatureWindow(
                ts=readonly_array(np.asarray(raw.ts)[keep]),
                columns=FrozenDict({c: readonly_array(np.asarray(raw.columns[c])[keep]) for c in cols}),
                prediction_ids=None if ids is None else readonly_array(np.asarray(ids)[keep]),
            )

        return self._memo(("features", start, end, cols), load)

    def histograms(self, window: timedelta, columns: Sequence[str] | None = None) -> HistogramWindow | None:
        """Feature counts kept at ingest on the champion's frozen bins, over the whole time
        buckets inside ``[now - window, now)`` (never past ``now``).

        None when there is no champion, the source keeps no histograms
        (:class:`~retrainer.windows.HistogramSource`), or they do not cover the window: read
        :meth:`features` instead.
        """
        start = self._start(window)
        cols = None if columns is None else ((columns,) if isinstance(columns, str) else tuple(columns))

        def load() -> HistogramWindow | None:
            source = self._source()
            if self.champion is None or not isinstance(source, HistogramSource):
                return None
            return source.feature_histograms(self.model_name, self.champion.version, start, self.now, cols)

        return self._memo(("histograms", window, cols), load)

    def histograms_auto(self, min_samples: int, max_window: timedelta,
                        columns: Sequence[str] | None = None) -> tuple[HistogramWindow | None, EvidenceWindow]:
        """Counts kept at ingest over the shortest trailing run of whole hours holding
        ``min_samples`` predictions, found by doubling from an hour (so at most twice the shortest:
        counts cannot be cut inside a bucket), bounded as :meth:`labelled_auto`. None when the
        counts do not cover a window (read :meth:`features_auto` instead)."""
        if not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples must be a positive int, got {min_samples!r}")
        earliest, bound, floor = self._auto_bounds(self.now, max_window)
        limit = self.now - earliest
        span, counted = min(timedelta(hours=1), limit), None
        while span > timedelta(0):
            counted = self.histograms(span, columns)
            if counted is None or counted.n_rows >= min_samples or span >= limit:
                break
            span = min(span * 2, limit)
        if counted is None:
            return None, EvidenceWindow(self.now - span, self.now, 0, min_samples, bound, "predictions", max_window, floor)
        start = datetime.fromtimestamp(counted.start, tz=timezone.utc)
        limit_kind = "count" if counted.n_rows >= min_samples else bound
        return counted, EvidenceWindow(start, self.now, counted.n_rows, min_samples, limit_kind, "predictions",
                                       max_window, floor)

    def labelled(
        self, window: timedelta, *, model_version: str | None = None, lag: timedelta = timedelta(0)
    ) -> LabelledWindow:
        """Predictions made in ``[now - window, now)`` whose label had arrived by ``now``.

        With a ``lag`` the window ends that long ago instead, ``[now - lag - window, now - lag)``
        (a window old enough for its labels to have come back); labels still count only up to ``now``.
        """
        if not isinstance(lag, timedelta) or lag < timedelta(0):
            raise ValueError(f"lag must be a timedelta of zero or more, got {lag!r}")
        self._start(window)  # validates the window
        end = self.now - lag
        return self._labelled_between(end - window, end, model_version)

    def _labelled_between(self, start: datetime, end: datetime, model_version: str | None) -> LabelledWindow:
        def load() -> LabelledWindow:
            raw = self._source().labelled_window(
                self.model_name, start, end, as_of=self.now, model_version=model_version
            )
            return _clamped(raw, end, n_predictions=int(raw.n_predictions))

        return self._memo(("labelled", start, end, model_version), load)

    def scored(self, window: timedelta, *, model_version: str | None = None) -> LabelledWindow | None:
        """Every prediction made in ``[now - window, now)``, labelled or not: ``y_true`` is NaN
        where the label had not arrived by ``now`` (what label-free estimation reads).

        None when the source cannot serve unlabelled predictions (it does not implement
        :class:`~retrainer.windows.ScoredWindowSource`).
        """
        return self._scored_between(self._start(window), self.now, model_version)

    def _scored_between(self, start: datetime, end: datetime, model_version: str | None) -> LabelledWindow | None:
        def load() -> LabelledWindow | None:
            source = self._source()
            if not isinstance(source, ScoredWindowSource):
                return None
            raw = source.scored_window(self.model_name, start, end, as_of=self.now, model_version=model_version)
            return _clamped(raw, end)

        return self._memo(("scored", start, end, model_version), load)

    # -- evidence-sized windows (``window: auto``) ---------------------------------------------------

    def _count_between(self, start: datetime, end: datetime, *, labelled: bool) -> int:
        def load() -> int:
            return int(self._source().count_predictions(self.model_name, start, end, labelled=labelled, as_of=self.now))

        return self._memo(("count_between", start, end, labelled), load)

    def _auto_bounds(self, end: datetime, max_window: timedelta) -> tuple[datetime, str, datetime | None]:
        """The earliest start an auto window may take, and what sets it: ``max_window`` back from
        ``end``, or the champion's deployment when that is later (its predecessor's rows are not its own)."""
        if not isinstance(max_window, timedelta) or max_window <= timedelta(0):
            raise ValueError(f"max_window must be a positive timedelta, got {max_window!r}")
        floor = None if self.champion is None else _utc(self.champion.created_at, "champion.created_at")
        earliest = end - max_window
        if floor is not None and floor > earliest:
            return min(floor, end), "deployment", floor
        return earliest, "max_window", floor

    def _auto(self, min_samples: int, max_window: timedelta, end: datetime, *, labelled: bool,
              read: Any) -> tuple[Any, EvidenceWindow]:
        """Shortest trailing window ending at ``end`` that holds ``min_samples`` (see :meth:`labelled_auto`).

        ``read(start)`` reads ``[start, end)``; the rows kept are the newest ``min_samples`` (ties at
        the cut kept too), found by counting first so that at most about twice that is read."""
        if not isinstance(min_samples, int) or min_samples < 1:
            raise ValueError(f"min_samples must be a positive int, got {min_samples!r}")
        earliest, bound, floor = self._auto_bounds(end, max_window)
        what = "labelled predictions" if labelled else "predictions"
        span = shortest_span(lambda start: self._count_between(start, end, labelled=labelled), end, min_samples, earliest)
        if span <= timedelta(0):
            return None, EvidenceWindow(end, end, 0, min_samples, bound, what, max_window, floor)
        raw = read(end - span)
        if len(raw) < min_samples and end - span > earliest:
            raw = read(earliest)  # the counts included rows the read filters out (another version's)
        ts = np.asarray(raw.ts, dtype=np.float64)
        if ts.size < min_samples:
            return raw, EvidenceWindow(earliest, end, int(ts.size), min_samples, bound, what, max_window, floor)
        cut = float(ts[-min_samples])
        keep = ts >= cut
        # Floored to the microsecond a datetime holds, so [start, end) still contains the row at the cut.
        start = _EPOCH + timedelta(microseconds=math.floor(cut * 1e6))
        return _trim(raw, keep), EvidenceWindow(start, end, int(keep.sum()), min_samples, "count", what, max_window, floor)

    def labelled_auto(self, min_samples: int, max_window: timedelta, *, model_version: str | None = None,
                      lag: timedelta = timedelta(0)) -> tuple[LabelledWindow, EvidenceWindow]:
        """The shortest trailing window ending ``lag`` before now that holds ``min_samples``
        predictions labelled by now (``window: auto``), never longer than ``max_window`` nor reaching
        before the champion's deployment (``champion.created_at``); with fewer, the whole bounded
        window and ``EvidenceWindow.enough`` False. Never reads past ``now - lag``."""
        end = self.now - lag

        def read(start: datetime) -> LabelledWindow:
            return self._labelled_between(start, end, model_version)

        window, span = self._auto(min_samples, max_window, end, labelled=True, read=read)
        if window is None:
            window = LabelledWindow(*(readonly_array(np.zeros(0)) for _ in range(4)), n_predictions=0)
        elif span.limit == "count":  # coverage over the kept span: all predictions made in it
            window = replace(window, n_predictions=self._count_between(span.start, end, labelled=False))
        return window, span

    def features_auto(self, min_samples: int, max_window: timedelta,
                      columns: Sequence[str]) -> tuple[FeatureWindow, EvidenceWindow]:
        """Feature values of the shortest trailing window holding ``min_samples`` predictions
        (bounded as :meth:`labelled_auto`)."""
        cols = (columns,) if isinstance(columns, str) else tuple(columns)
        window, span = self._auto(min_samples, max_window, self.now, labelled=False,
                                  read=lambda start: self._features_between(start, self.now, cols))
        if window is None:
            window = FeatureWindow(ts=readonly_array(np.zeros(0)),
                                   columns=FrozenDict({c: readonly_array(np.zeros(0)) for c in cols}))
        return window, span

    def scored_auto(self, min_samples: int, max_window: timedelta, *,
                    model_version: str | None = None) -> tuple[LabelledWindow | None, EvidenceWindow]:
        """Every prediction (labelled or not) of the shortest trailing window holding ``min_samples``
        predictions (bounded as :meth:`labelled_auto`); None when the source cannot serve them."""
        if not isinstance(self._source(), ScoredWindowSource):
            return None, EvidenceWindow(self.now, self.now, 0, min_samples, "max_window")
        window, span = self._auto(min_samples, max_window, self.now, labelled=False,
                                  read=lambda start: self._scored_between(start, self.now, model_version))
        if window is None:
            window = LabelledWindow(*(readonly_array(np.zeros(0)) for _ in range(4)), n_predictions=0)
        return window, span

    def count_since(self, since: datetime | timedelta, *, labelled: bool = False) -> int:
        """Predictions made in ``[since, now)``; with ``labelled``, only those labelled by ``now``.

        ``since`` may be a datetime or a look-back timedelta. A ``since`` after ``now`` counts 0.
        """
        start = self._start(since) if isinstance(since, timedelta) else _utc(since, "since")
        assert start is not None
        if start >= self.now:
            return 0

        def load() -> int:
            return int(
                self._source().count_predictions(
                    self.model_name, start, self.now, labelled=labelled, as_of=self.now
                )
            )

        return self._memo(("count", start, labelled), load)

    def label_delay(self, lookback: timedelta = timedelta(days=30)) -> LabelDelay | None:
        """How late this model's labels come, from the labels that arrived in the ``lookback``
        before ``now`` (p50/p95 of label time - prediction time, share labelled).

        None when the source cannot measure it (it does not implement
        :class:`~retrainer.windows.LabelDelaySource`).
        """
        self._start(lookback)

        def load() -> LabelDelay | None:
            source = self._source()
            if not isinstance(source, LabelDelaySource):
                return None
            return source.label_delay(self.model_name, as_of=self.now, lookback=lookback)

        return self._memo(("label_delay", lookback), load)

    def retrain_history(self, limit: int = 10) -> tuple[RetrainRecord, ...]:
        """Past retrains that had finished by ``now``, most recent first (at most ``limit``).

        A source that does not implement :class:`~retrainer.windows.RetrainHistorySource` has no
        history to show: the answer is empty, not an error.
        """
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")

        def load() -> tuple[RetrainRecord, ...]:
            source = self._source()
            if not isinstance(source, RetrainHistorySource):
                return ()
            raw = source.retrain_history(self.model_name, as_of=self.now, limit=limit)
            seen = [
                RetrainRecord(
                    at=_utc(r.at, "RetrainRecord.at"),  # type: ignore[arg-type]
                    metrics=FrozenDict({k: float(v) for k, v in r.metrics.items()}),
                    duration_s=None if r.duration_s is None else float(r.duration_s),
                    status=r.status,
                    version=r.version,
                    # getattr: a plugin's record written before these fields existed still works.
                    offline_delta=_offline_delta(getattr(r, "offline_delta", None)),
                    champion_since=_utc(getattr(r, "champion_since", None), "RetrainRecord.champion_since"),
                )
                for r in raw
            ]
            # The same guard as the windows: a run that finished after ``now`` is the future.
            seen = sorted((r for r in seen if r.at <= self.now), key=lambda r: r.at, reverse=True)
            return tuple(seen[:limit])

        return self._memo(("retrain_history", limit), load)

    def since_last_retrain(self) -> timedelta | None:
        """Time elapsed since the last retrain, or None if the model was never retrained."""
        return None if self.last_retrain_at is None else self.now - self.last_retrain_at


def _offline_delta(raw: Any) -> FrozenDict | None:
    """A record's per-metric offline difference as floats (non-finite ones left out), or None."""
    if not raw:
        return None
    out = {k: float(v) for k, v in raw.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}
    return FrozenDict(out) if out else None


__all__ = ["AUTO", "ChampionInfo", "EvidenceWindow", "FeatureWindow", "LabelledWindow", "RetrainRecord", "TriggerContext", "WindowSource"]
