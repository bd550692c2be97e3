"""The replayed history: labelled rows with event and label-arrival times, cut into steps.

A row's label *arrives* at ``labelled_at`` (event time + the label delay, or a per-row arrival
time when the data has one); before that instant neither a trigger nor a training run may use it.
Steps are half-open ``[t_k, t_k + every)``; the last one ends at ``end``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from retrainer.config import DataConfig
from retrainer.errors import ConfigError, InsufficientDataError

# One step grid of more steps than this is almost surely a typo in --every (e.g. 1h over years).
MAX_STEPS = 20_000


def _epoch(column: pd.Series) -> np.ndarray:
    stamps = pd.to_datetime(column, utc=True)
    return ((stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds()).to_numpy(np.float64)


@dataclass(frozen=True, eq=False)
class History:
    """Rows sorted by event time: ``frame`` (features, timestamp, label as training reads them),
    ``ts`` and ``labelled_at`` as epoch seconds (NaN = the label never arrives), ``y`` as floats."""

    frame: pd.DataFrame
    data: DataConfig
    ts: np.ndarray
    labelled_at: np.ndarray
    y: np.ndarray

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        data: DataConfig,
        *,
        label_delay: timedelta = timedelta(0),
        label_time_column: str | None = None,
    ) -> History:
        """``frame`` holds the configured timestamp, label and feature columns; labels arrive
        ``label_delay`` after the event, or at ``label_time_column`` when given."""
        missing = [c for c in (data.timestamp_column, data.label_column, *data.feature_names) if c not in frame]
        if missing:
            raise ConfigError(f"the history lacks column(s) {', '.join(missing)}: fix data.features / data.*_column")
        out = frame.copy()
        # Microseconds, as a datetime (and the SQL warehouse) holds them: no silent nanosecond truncation later.
        out[data.timestamp_column] = pd.to_datetime(out[data.timestamp_column], utc=True).dt.floor("us")
        out = out.sort_values(data.timestamp_column, kind="mergesort").reset_index(drop=True)
        ts = _epoch(out[data.timestamp_column])
        try:
            y = pd.to_numeric(out[data.label_column]).to_numpy(np.float64)
        except (ValueError, TypeError):
            raise ConfigError(
                f"label column {data.label_column!r} is not numeric: simulate scores numeric class labels (0/1)"
            ) from None
        if label_time_column is not None:
            arrived = _epoch(out[label_time_column])
        else:
            arrived = ts + label_delay.total_seconds()
        labelled_at = np.where(np.isnan(y), np.nan, arrived)
        keep = [*data.feature_names, data.timestamp_column, data.label_column]
        return cls(out[keep], data, ts, labelled_at, y)

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def training_rows(self, at: datetime, window: timedelta | None) -> pd.DataFrame:
        """Rows a training run at ``at`` could see: event time in ``(at - window, at)`` and the
        label arrived by ``at``. Strictly before ``at``: a row stamped ``at`` is not yet logged."""
        now = at.timestamp()
        mask = (self.ts < now) & (self.labelled_at <= now)
        if window is not None:
            mask &= self.ts > now - window.total_seconds()
        return self.frame[mask]


@dataclass(frozen=True, eq=False)
class StepGrid:
    """Step ``k`` starts at ``start + k * every`` and serves the rows ``rows[k]:rows[k + 1]``."""

    start: datetime
    end: datetime
    every: timedelta
    instants: tuple[datetime, ...]
    rows: np.ndarray  # len(instants) + 1 row offsets into the History

    @classmethod
    def build(cls, history: History, start: datetime, end: datetime, every: timedelta) -> StepGrid:
        if start.tzinfo is None or end.tzinfo is None:
            raise ConfigError("--start and --end must carry a time zone (the CLI reads them as UTC)")
        if every <= timedelta(0):
            raise ConfigError(f"--every must be a positive duration, got {every}")
        if end <= start:
            raise ConfigError(f"--end {end.isoformat()} is not after --start {start.isoformat()}")
        n = math.ceil((end - start) / every)
        if n > MAX_STEPS:
            raise ConfigError(
                f"{n} steps of {every} between {start.date()} and {end.date()} is more than {MAX_STEPS}: "
                "use a longer --every or a shorter span"
            )
        instants = tuple(start + k * every for k in range(n))
        edges = [t.timestamp() for t in instants] + [end.timestamp()]
        rows = np.searchsorted(history.ts, np.asarray(edges), side="left")
        if rows[-1] == rows[0]:
            raise InsufficientDataError(
                f"the history has no row between {start.isoformat()} and {end.isoformat()}: pick --start/--end "
                f"inside the data (it spans {_span(history)})"
            )
        return cls(start.astimezone(timezone.utc), end.astimezone(timezone.utc), every, instants, rows)

    def __len__(self) -> int:
        return len(self.instants)

    def step_slice(self, k: int) -> slice:
        return slice(int(self.rows[k]), int(self.rows[k + 1]))


def _span(history: History) -> str:
    if not len(history):
        return "no rows"
    first, last = (datetime.fromtimestamp(float(x), timezone.utc).isoformat() for x in (history.ts[0], history.ts[-1]))
    return f"{first} to {last}"


__all__ = ["MAX_STEPS", "History", "StepGrid"]
