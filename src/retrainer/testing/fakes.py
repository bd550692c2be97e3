"""Stand-ins for the SQL store, for tests and for plugin authors.

:class:`InMemoryWindowSource` answers the :class:`~retrainer.windows.WindowSource` queries from an
in-memory table with exactly the store's semantics (half-open ``[start, end)`` windows, labels
visible only once received, ``as_of`` inclusive). :func:`make_context` wraps one in a
:class:`~retrainer.triggers.TriggerContext`; :func:`standard_contexts` builds the scenarios the
conformance kit runs every trigger through.

>>> src = InMemoryWindowSource({"ts": ["2025-01-01T00:00Z", "2025-01-02T00:00Z"], "x": [1.0, 2.0]})
>>> ctx = make_context(source=src, now=datetime(2025, 1, 2, tzinfo=timezone.utc))
>>> ctx.features(timedelta(days=7), ["x"]).columns["x"].tolist()  # the row at `now` is not yet visible
[1.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from retrainer.errors import StoreError
from retrainer.triggers.context import ChampionInfo, TriggerContext
from retrainer.windows import FeatureWindow, LabelDelay, LabelledWindow, RetrainRecord

DEFAULT_NOW = datetime(2025, 1, 15, tzinfo=timezone.utc)
STANDARD_FEATURES: tuple[str, ...] = ("x1", "x2", "segment")
_RESERVED = ("ts", "model_name", "model_version", "y_true", "y_pred", "score", "labelled_at")


def _epoch(values: Any) -> np.ndarray:
    """Timestamps (strings, datetimes, pandas; naive = UTC) as float64 epoch seconds; NaN for missing."""
    stamps = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    seconds = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return seconds.to_numpy(np.float64)


def _instant(value: datetime) -> float:
    if value.tzinfo is None:
        raise ValueError(f"{value!r} must be timezone-aware")
    return value.timestamp()


class InMemoryWindowSource:
    """A read-only prediction log held in numpy arrays.

    Columns of ``data`` (a DataFrame or a mapping of equal-length sequences):

    * ``ts`` (required): when the prediction was made;
    * ``model_name``, ``model_version`` (optional): without ``model_name`` every row belongs to every model;
    * ``y_pred``, ``score`` (optional): the model's answer; a missing score is NaN;
    * ``y_true``, ``labelled_at`` (optional): the label and when it arrived (default: at ``ts``);
      a row with a missing ``y_true`` or ``labelled_at`` is unlabelled;
    * every other column is a feature.

    ``retrains`` are the model's past retrain runs (every model's, as rows without ``model_name``
    are), served by :meth:`retrain_history` with the store's clamp: finished at or before ``as_of``.
    """

    def __init__(
        self, data: pd.DataFrame | Mapping[str, Sequence[Any]] | None = None, *,
        retrains: Sequence[RetrainRecord] = (),
    ) -> None:
        frame = pd.DataFrame(data if data is not None else {"ts": []})
        if "ts" not in frame.columns:
            raise ValueError("InMemoryWindowSource needs a `ts` column (when each prediction was made)")
        n = len(frame)
        self._ts = _epoch(frame["ts"])
        self._model = frame["model_name"].to_numpy(object) if "model_name" in frame else None
        self._version = frame["model_version"].astype(object).to_numpy(object) if "model_version" in frame else None
        # Labels and predictions are numbers in the store (class ids, probabilities, targets).
        self._y_pred = pd.to_numeric(frame["y_pred"]).to_numpy(float) if "y_pred" in frame else np.full(n, np.nan)
        self._score = frame["score"].to_numpy(float) if "score" in frame else np.full(n, np.nan)
        self._y_true = pd.to_numeric(frame["y_true"]).to_numpy(float) if "y_true" in frame else np.full(n, np.nan)
        has_label = frame["y_true"].notna().to_numpy() if "y_true" in frame else np.zeros(n, dtype=bool)
        arrived = _epoch(frame["labelled_at"]) if "labelled_at" in frame else self._ts.copy()
        self._labelled_at = np.where(has_label, arrived, np.nan)
        self._features = {c: frame[c].to_numpy() for c in frame.columns if c not in _RESERVED}
        self._retrains = tuple(retrains)

    def __len__(self) -> int:
        return int(len(self._ts))

    def _rows(self, model_name: str, start: datetime, end: datetime, model_version: str | None = None) -> np.ndarray:
        mask = (self._ts >= _instant(start)) & (self._ts < _instant(end))
        if self._model is not None:
            mask &= self._model == model_name
        if model_version is not None and self._version is not None:
            mask &= self._version == model_version
        idx = np.flatnonzero(mask)
        return idx[np.argsort(self._ts[idx], kind="stable")]

    def _labelled(self, idx: np.ndarray, as_of: datetime | None) -> np.ndarray:
        arrived = self._labelled_at[idx]
        known = ~np.isnan(arrived)
        if as_of is not None:
            known &= arrived <= _instant(as_of)
        return idx[known]

    def features_window(
        self, model_name: str, start: datetime, end: datetime, columns: Sequence[str]
    ) -> FeatureWindow:
        unknown = [c for c in columns if c not in self._features]
        if unknown:
            raise StoreError(f"no feature column {', '.join(map(repr, unknown))}; known: {', '.join(self._features)}")
        idx = self._rows(model_name, start, end)
        return FeatureWindow(ts=self._ts[idx], columns={c: self._features[c][idx] for c in columns}, prediction_ids=idx)

    def labelled_window(
        self,
        model_name: str,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime,
        model_version: str | None = None,
    ) -> LabelledWindow:
        idx = self._rows(model_name, start, end, model_version)
        lab = self._labelled(idx, as_of)
        return LabelledWindow(
            y_true=self._y_true[lab], y_pred=self._y_pred[lab], score=self._score[lab], ts=self._ts[lab],
            n_predictions=int(len(idx)),
        )

    def scored_window(
        self,
        model_name: str,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime,
        model_version: str | None = None,
    ) -> LabelledWindow:
        idx = self._rows(model_name, start, end, model_version)
        arrived = self._labelled_at[idx]
        known = ~np.isnan(arrived) & (arrived <= _instant(as_of))
        return LabelledWindow(
            y_true=np.where(known, self._y_true[idx], np.nan), y_pred=self._y_pred[idx], score=self._score[idx],
            ts=self._ts[idx], n_predictions=int(len(idx)),
        )

    def count_predictions(
        self,
        model_name: str,
        since: datetime,
        until: datetime,
        *,
        labelled: bool = False,
        as_of: datetime | None = None,
    ) -> int:
        idx = self._rows(model_name, since, until)
        return int(len(self._labelled(idx, as_of) if labelled else idx))

    def label_delay(self, model_name: str, *, as_of: datetime, lookback: timedelta) -> LabelDelay:
        """The store's label delay (:meth:`retrainer.store.Store.label_delay`), without its sample cap."""
        hi = _instant(as_of)
        lo = hi - lookback.total_seconds()
        mine = np.ones(len(self._ts), dtype=bool) if self._model is None else self._model == model_name
        arrived = mine & (self._labelled_at > lo) & (self._labelled_at <= hi)  # NaN (unlabelled) compares False
        made = self._rows(model_name, as_of - lookback, as_of)
        return LabelDelay.from_delays(
            self._labelled_at[arrived] - self._ts[arrived], as_of=as_of, lookback=lookback,
            n_predictions=len(made), n_labelled=len(self._labelled(made, as_of)),
        )

    def retrain_history(self, model_name: str, *, as_of: datetime, limit: int = 10) -> list[RetrainRecord]:
        done = [r for r in self._retrains if _instant(r.at) <= _instant(as_of)]
        return sorted(done, key=lambda r: r.at, reverse=True)[:limit]


def make_context(
    data: pd.DataFrame | Mapping[str, Sequence[Any]] | None = None,
    *,
    now: datetime = DEFAULT_NOW,
    model_name: str = "model",
    source: Any = None,
    last_retrain_at: datetime | None = None,
    champion: ChampionInfo | None = None,
    reference: Mapping[str, Any] | None = None,
    retrains: Sequence[RetrainRecord] = (),
) -> TriggerContext:
    """A context over ``data`` (or an explicit ``source``) at ``now``; ``retrains`` are past retrain runs."""
    if source is None:
        source = InMemoryWindowSource(data, retrains=retrains)
    return TriggerContext(
        model_name=model_name, now=now, source=source, last_retrain_at=last_retrain_at,
        champion=champion, reference=reference,
    )


def synthetic_log(
    now: datetime = DEFAULT_NOW, *, days: int = 14, every: timedelta = timedelta(minutes=20),
    drifted: bool = False, seed: int = 0, model_name: str = "model",
) -> pd.DataFrame:
    """A deterministic prediction log ending just after ``now`` (a few rows lie in the future on purpose).

    Features ``x1`` (normal), ``x2`` (exponential), ``segment`` (a/b/c); labels arrive one day late.
    With ``drifted`` the last three days shift ``x1`` and ``segment`` and the model gets worse.
    """
    rng = np.random.default_rng(seed)
    ts = pd.date_range(end=now + timedelta(hours=2), periods=int(timedelta(days=days) / every), freq=every)
    n = len(ts)
    recent = np.asarray(ts >= now - timedelta(days=3)) if drifted else np.zeros(n, dtype=bool)
    x1 = rng.normal(0.0, 1.0, n) + np.where(recent, 2.5, 0.0)
    x2 = rng.exponential(1.0, n)
    segment = np.where(recent, rng.choice(["a", "b", "c"], n, p=[0.1, 0.1, 0.8]),
                       rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]))
    y_true = (x1 + rng.normal(0.0, 0.5, n) > np.where(recent, 2.5, 0.0)).astype(int)
    score = 1.0 / (1.0 + np.exp(-2.0 * x1))  # the model learnt the old boundary at 0
    return pd.DataFrame({
        "ts": ts, "model_name": model_name, "model_version": "3",
        "x1": x1, "x2": x2, "segment": segment,
        "y_true": y_true, "y_pred": (score > 0.5).astype(int), "score": score,
        "labelled_at": ts + timedelta(days=1),
    })


def labelled_log(
    rng: np.random.Generator, accuracy: float, *, end: datetime = DEFAULT_NOW, days: int = 20,
    per_day: tuple[int, int] = (10, 50), delay: timedelta = timedelta(hours=1),
) -> pd.DataFrame:
    """``days`` of labelled predictions ending at ``end``, ``per_day`` (low, high) a day drawn
    uniformly per day, each right with probability ``accuracy`` (balanced classes; the score is the
    answer), labels ``delay`` late: a model's quality stream at low volume."""
    counts = rng.integers(per_day[0], per_day[1] + 1, days)
    n = int(counts.sum())
    start = pd.Timestamp(end - timedelta(days=days))
    ts = start + pd.to_timedelta((np.repeat(np.arange(days), counts) + rng.random(n)) * 86400, unit="s")
    y = rng.integers(0, 2, n).astype(float)
    pred = np.where(rng.random(n) < accuracy, y, 1 - y)
    return pd.DataFrame({"ts": ts, "y_true": y, "y_pred": pred, "score": pred, "labelled_at": ts + delay})


def standard_retrains(now: datetime = DEFAULT_NOW) -> tuple[RetrainRecord, ...]:
    """Two past retrains of the standard scenarios (the champion's, 10 days before ``now``) and
    one in the future of ``now`` that no context may show."""
    return (
        RetrainRecord(now - timedelta(days=40), {"accuracy": 0.91, "f1": 0.88}, duration_s=540.0, version="2"),
        RetrainRecord(now - timedelta(days=10), {"accuracy": 0.93, "f1": 0.90}, duration_s=660.0, version="3"),
        RetrainRecord(now + timedelta(days=1), {"accuracy": 0.99, "f1": 0.99}, duration_s=60.0, version="4"),
    )


def standard_contexts(
    now: datetime = DEFAULT_NOW, *, model_name: str = "model", reference: Mapping[str, Any] | None = None
) -> dict[str, TriggerContext]:
    """The scenarios of the conformance kit: normal, drifted, empty, nan, no_champion.

    Contexts with a champion also have two past retrains (:func:`standard_retrains`); the
    no_champion one has none.

    Features are :data:`STANDARD_FEATURES`. ``reference`` defaults to
    ``{"columns": {name: training sample}, "n_rows": n}``; pass your trigger's own profile format
    (e.g. built from :func:`synthetic_log` with ``now - 30 days``) to exercise it.
    """
    normal = synthetic_log(now, model_name=model_name)
    drifted = synthetic_log(now, model_name=model_name, drifted=True, seed=1)
    nan = normal.copy()
    nan[["x1", "x2", "score"]] = np.nan
    nan["segment"] = None
    training = synthetic_log(now - timedelta(days=30), model_name=model_name, seed=2)
    if reference is None:
        reference = {"columns": {c: training[c].to_numpy() for c in STANDARD_FEATURES}, "n_rows": len(training)}
    champion = ChampionInfo("3", created_at=now - timedelta(days=10), run_id="run-3", tags={"trained_on": "30d"})
    common = {"now": now, "model_name": model_name, "reference": reference}
    with_champion = {**common, "champion": champion, "last_retrain_at": now - timedelta(days=10),
                     "retrains": standard_retrains(now)}
    return {
        "normal": make_context(normal, **with_champion),
        "drifted": make_context(drifted, **with_champion),
        "empty": make_context(normal.iloc[0:0], **with_champion),
        "nan": make_context(nan, **with_champion),
        "no_champion": make_context(normal, **common),
    }


__all__ = [
    "DEFAULT_NOW",
    "STANDARD_FEATURES",
    "InMemoryWindowSource",
    "make_context",
    "standard_contexts",
    "standard_retrains",
    "synthetic_log",
]
