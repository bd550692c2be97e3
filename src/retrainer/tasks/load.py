"""Load the training data: one SQL read, a time window, and a time-based holdout.

The holdout is the *latest* ``holdout_fraction`` of rows by event time, never a random
sample: a random split leaks the future into training and flatters every candidate. The
champion is scored on the same holdout (see :mod:`retrainer.tasks.evaluate`).

Identifiers (table, columns) were validated by :mod:`retrainer.config`; they still reach SQL
only through SQLAlchemy's quoting. A configured ``query`` is bound with ``text().bindparams``:
parameter values never become SQL text.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import pandas as pd
import sqlalchemy as sa

from retrainer.config import DataConfig
from retrainer.errors import ConfigError, InsufficientDataError, MissingColumnsError, StoreError, TrainingDataError
from retrainer.store.engine import sqlite_file
from retrainer.tasks._retry import io_task


class LabelledSource(Protocol):
    """The part of the retrainer SQL store that the loader reads (labelled inference log)."""

    def labelled_frame(
        self,
        model_name: str,
        start: datetime,
        end: datetime,
        *,
        as_of: datetime,
        columns: Sequence[str],
    ) -> pd.DataFrame: ...


@dataclass(frozen=True)
class TrainingData:
    """Train and holdout splits plus where they came from."""

    X_train: pd.DataFrame
    y_train: pd.Series
    X_holdout: pd.DataFrame
    y_holdout: pd.Series
    window_start: datetime  # earliest event time used
    window_end: datetime  # latest event time used
    holdout_start: datetime  # earliest event time in the holdout; all training rows are at or before it
    train_samples: int
    holdout_samples: int
    # Rows per origin ("source", "inference_log") and rows dropped because the label was missing.
    rows_by_origin: Mapping[str, int] = field(default_factory=dict)
    dropped_unlabelled: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON-friendly facts for MLflow tags and Prefect artifacts."""
        return {
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "holdout_start": self.holdout_start.isoformat(),
            "train_samples": self.train_samples,
            "holdout_samples": self.holdout_samples,
            "rows_by_origin": dict(self.rows_by_origin),
            "dropped_unlabelled": self.dropped_unlabelled,
        }


def _utc(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (e.g. datetime.now(timezone.utc)), got {value!r}")
    return value.astimezone(timezone.utc)


def _to_utc_datetime(value: Any) -> datetime:
    return pd.Timestamp(value).tz_convert("UTC").to_pydatetime()


def _wanted_columns(cfg: DataConfig) -> list[str]:
    return [*cfg.feature_names, cfg.timestamp_column, cfg.label_column]


def _read_source(cfg: DataConfig, *, start: datetime | None, end: datetime) -> pd.DataFrame:
    source = cfg.source
    wanted = _wanted_columns(cfg)
    try:
        engine = sa.create_engine(source.url)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(f"data.source.url is not a usable SQLAlchemy URL: {exc}") from None
    shown = engine.url.render_as_string(hide_password=True)
    path = sqlite_file(engine.url)
    if path is not None and not path.exists():  # connecting would create an empty file
        engine.dispose()
        raise ConfigError(
            f"the training data file {str(path)!r} (data.source.url {shown}) does not exist: "
            "point data.source.url at the database that holds your training table"
        )
    try:
        with engine.connect() as conn:
            declared: dict[str, str] = {}
            if source.table is not None:
                stmt, declared = _table_select(conn, cfg, start=start, end=end)
            else:
                stmt = _query_statement(source.query or "", source.params)
            result = conn.execute(stmt)
            # Plain str names: SQLAlchemy hands back quoted_name objects, which sklearn does not take as names.
            frame = pd.DataFrame(result.fetchall(), columns=[str(k) for k in result.keys()])
    except sa.exc.SQLAlchemyError as exc:
        # Connection and I/O failures are retried by the Prefect task; the message says where.
        raise StoreError(f"cannot read training data from {shown}: {exc.__class__.__name__}: {exc}") from exc
    finally:
        engine.dispose()
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        what = f"table {source.table!r}" if source.table else "data.source.query"
        raise MissingColumnsError(
            f"{what} returns no column(s) {', '.join(missing)}; it returns {', '.join(map(str, frame.columns)) or 'nothing'}. "
            "Fix data.features / data.timestamp_column / data.label_column or the source."
        )
    frame = frame[wanted]
    frame.attrs["declared_types"] = declared  # for the messages of _normalise
    return frame


def _table_select(
    conn: sa.Connection, cfg: DataConfig, *, start: datetime | None, end: datetime
) -> tuple[sa.Select, dict[str, str]]:
    """The SELECT of the wanted columns, and each column's declared type (for error messages)."""
    table_name = cfg.source.table or ""
    schema, _, name = table_name.rpartition(".")
    try:
        table = sa.Table(name, sa.MetaData(), schema=schema or None, autoload_with=conn)
    except sa.exc.NoSuchTableError:
        shown = conn.engine.url.render_as_string(hide_password=True)
        raise MissingColumnsError(
            f"training table {table_name!r} does not exist (data.source.table) in {shown} (data.source.url): "
            f"create it with columns {', '.join(_wanted_columns(cfg))}, or point data.source.table/url at yours"
        ) from None
    wanted = _wanted_columns(cfg)
    missing = [c for c in wanted if c not in table.c]
    if missing:
        raise MissingColumnsError(
            f"table {table_name!r} has no column(s) {', '.join(missing)}; it has {', '.join(table.c.keys())}. "
            "Fix data.features / data.timestamp_column / data.label_column or the table."
        )
    declared = {c: _declared(table.c[c].type) for c in wanted}
    if conn.dialect.name == "sqlite":
        # SQLite's declared types are advice, not law: `CREATE TABLE … AS SELECT` declares a
        # TIMESTAMP column `NUM`, whose converter then fails on the ISO text the rows still hold.
        # Read the stored values as they are; _normalise types them (and names what does not fit).
        return sa.select(*(sa.type_coerce(table.c[c], sa.types.NullType()).label(c) for c in wanted)), declared
    stmt = sa.select(*(table.c[c] for c in wanted))
    ts = table.c[cfg.timestamp_column]
    # Push the window into SQL where timestamps are real timestamps (in SQLite they are whatever
    # the writer chose, so there the always applied filter in pandas decides).
    if isinstance(ts.type, sa.DateTime):
        aware = bool(getattr(ts.type, "timezone", False))
        as_param = (lambda d: d) if aware else (lambda d: d.replace(tzinfo=None))
        stmt = stmt.where(ts <= as_param(end))
        if start is not None:
            stmt = stmt.where(ts > as_param(start))
    return stmt, declared


def _declared(column_type: sa.types.TypeEngine) -> str:
    try:
        return str(column_type)
    except Exception:  # noqa: BLE001 - a reflected type without a SQL spelling (NullType)
        return "no type"


def _query_statement(query: str, params: Mapping[str, Any]) -> sa.TextClause:
    stmt = sa.text(query)
    try:
        return stmt.bindparams(**params)
    except sa.exc.ArgumentError as exc:
        names = ", ".join(sorted(stmt._bindparams)) or "none"  # noqa: SLF001 - only for the message
        raise ConfigError(f"data.source.params do not match the query's :parameters ({names}): {exc}") from None


def _normalise(frame: pd.DataFrame, cfg: DataConfig, origin: str) -> pd.DataFrame:
    declared = frame.attrs.get("declared_types", {})
    out = frame.copy()
    ts_col = cfg.timestamp_column
    out[ts_col] = _timestamps(out[ts_col], ts_col, declared.get(ts_col), origin)
    for spec in cfg.features:
        col = out[spec.name]
        if spec.type == "categorical":
            # Categories are strings everywhere (training, serving, drift): 1 and "1" are one category.
            out[spec.name] = col.where(col.isna(), col.astype(str)).astype(object)
        else:
            try:
                out[spec.name] = pd.to_numeric(col, errors="raise").astype(float)
            except (ValueError, TypeError):
                bad = col[pd.to_numeric(col, errors="coerce").isna() & col.notna()].head(3).tolist()
                raise TrainingDataError(
                    f"{origin}: numeric feature {spec.name!r} holds non-numeric values such as {bad!r}"
                    f"{_declared_as(declared.get(spec.name))}; declare it `type: categorical` or clean the source"
                ) from None
    out["_origin"] = origin
    return out


_TIMESTAMP_FORMS = ("ISO-8601 text (e.g. '2026-03-01 06:00:00+00:00'; no offset means UTC) or a "
                    "TIMESTAMP/DATETIME column")


def _timestamps(values: pd.Series, column: str, declared: str | None, origin: str) -> pd.Series:
    """The event-time column as UTC timestamps, or one :class:`TrainingDataError` naming the column,
    what it holds (and was declared as) and what would work. Numbers are refused, not guessed at:
    pandas would read epoch seconds as nanoseconds (all of 1970), and the unit is not ours to guess."""
    where = f"{origin}: column {column!r} (data.timestamp_column)"
    if pd.api.types.is_datetime64_any_dtype(values):
        return pd.to_datetime(values, utc=True)
    present = values.dropna()
    numeric = present.map(lambda v: isinstance(v, numbers.Number) and not isinstance(v, bool))
    if numeric.any():
        examples = present[numeric].head(3).tolist()
        raise TrainingDataError(
            f"{where} holds numbers such as {examples!r}{_declared_as(declared)}, not timestamps: store "
            f"{_TIMESTAMP_FORMS}, or convert epoch seconds in a data.source.query "
            f"(SQLite: datetime({column}, 'unixepoch') AS {column})"
        )
    try:
        return pd.to_datetime(values, utc=True, format="mixed")
    except (ValueError, TypeError, OverflowError):
        parsed = pd.to_datetime(values, utc=True, format="mixed", errors="coerce")
        examples = values[parsed.isna() & values.notna()].head(3).tolist()
        kinds = sorted({type(v).__name__ for v in examples}) or ["values"]
        raise TrainingDataError(
            f"{where} holds {'/'.join(kinds)} that is not a timestamp, such as {examples!r}"
            f"{_declared_as(declared)}: store {_TIMESTAMP_FORMS}"
        ) from None


def _declared_as(declared: str | None) -> str:
    return f" (column declared {declared})" if declared else ""


def load_training_data(
    cfg: DataConfig,
    *,
    now: datetime,
    store: LabelledSource | None = None,
    model_name: str | None = None,
) -> TrainingData:
    """Read labelled rows with event time in ``(now - window, now]`` and split off the latest slice.

    ``store`` (with ``model_name``) adds labelled predictions from the inference log when
    ``cfg.include_inference_log`` is set. Raises :class:`InsufficientDataError` when fewer than
    ``cfg.min_rows`` labelled rows are found, :class:`MissingColumnsError` when the source lacks
    a configured column.
    """
    end = _utc(now, "now")
    start = end - cfg.window if cfg.window is not None else None
    frames = [_normalise(_read_source(cfg, start=start, end=end), cfg, "source")]

    if cfg.include_inference_log:
        if store is None or model_name is None:
            raise ConfigError(
                "data.include_inference_log is set but no store/model name was given to the loader: "
                "pass store= and model_name=, or set include_inference_log: false"
            )
        # No window means "all history"; the store wants a start instant, so give it the epoch.
        log_start = start if start is not None else datetime(1970, 1, 1, tzinfo=timezone.utc)
        log = store.labelled_frame(model_name, log_start, end, as_of=end, columns=cfg.feature_names)
        log = log.rename(columns={"label": cfg.label_column, "ts": cfg.timestamp_column})
        missing = [c for c in _wanted_columns(cfg) if c not in log.columns]
        if missing:
            raise StoreError(f"the inference log for {model_name!r} lacks column(s) {', '.join(missing)}")
        frames.append(_normalise(log[_wanted_columns(cfg)], cfg, "inference_log"))

    data = pd.concat(frames, ignore_index=True)
    ts = data[cfg.timestamp_column]
    in_window = ts <= pd.Timestamp(end)
    if start is not None:
        in_window &= ts > pd.Timestamp(start)
    data = data[in_window]
    unlabelled = data[cfg.label_column].isna()
    dropped = int(unlabelled.sum())
    data = data[~unlabelled]

    span = f"between {start.isoformat()} and {end.isoformat()}" if start else f"up to {end.isoformat()}"
    return split_training_data(data, cfg, span=span, dropped=dropped)


def read_source_history(cfg: DataConfig, *, end: datetime) -> pd.DataFrame:
    """Every row of the configured source with event time up to ``end``, normalised as training
    reads it (UTC timestamps, typed features), unlabelled rows included. ``retrainer simulate``
    replays this history."""
    end = _utc(end, "end")
    frame = _normalise(_read_source(cfg, start=None, end=end), cfg, "source")
    return frame[frame[cfg.timestamp_column] <= pd.Timestamp(end)].reset_index(drop=True)


def split_training_data(data: pd.DataFrame, cfg: DataConfig, *, span: str, dropped: int = 0) -> TrainingData:
    """Labelled rows -> :class:`TrainingData`: the latest ``holdout_fraction`` by event time is the holdout.

    ``span`` describes the window in the error message. Rows without an ``_origin`` column count as "source".
    """
    n = len(data)
    if n < cfg.min_rows:
        raise InsufficientDataError(
            f"found {n} labelled training row(s) {span} but data.min_rows is {cfg.min_rows}"
            + (f" ({dropped} more had no label)" if dropped else "")
            + ": widen data.window, wait for more labelled data, or lower data.min_rows"
        )

    # Stable sort keeps the source order among equal timestamps, so a rerun splits identically.
    data = data.sort_values(cfg.timestamp_column, kind="mergesort").reset_index(drop=True)
    n_holdout = min(n - 1, max(1, math.ceil(n * cfg.holdout_fraction)))
    if n - n_holdout < 1:
        raise InsufficientDataError(f"found {n} labelled row(s) {span}: too few to split off a holdout")
    train, holdout = data.iloc[: n - n_holdout], data.iloc[n - n_holdout :]
    check_classes(data[cfg.label_column], train[cfg.label_column], holdout[cfg.label_column], cfg, span=span)
    counts = data["_origin"].value_counts().to_dict() if "_origin" in data else {"source": n}

    def xy(part: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
        return part[cfg.feature_names].reset_index(drop=True), part[cfg.label_column].reset_index(drop=True)

    X_train, y_train = xy(train)
    X_holdout, y_holdout = xy(holdout)
    return TrainingData(
        X_train=X_train,
        y_train=y_train,
        X_holdout=X_holdout,
        y_holdout=y_holdout,
        window_start=_to_utc_datetime(data[cfg.timestamp_column].iloc[0]),
        window_end=_to_utc_datetime(data[cfg.timestamp_column].iloc[-1]),
        holdout_start=_to_utc_datetime(holdout[cfg.timestamp_column].iloc[0]),
        train_samples=len(train),
        holdout_samples=len(holdout),
        rows_by_origin={str(k): int(v) for k, v in counts.items()},
        dropped_unlabelled=dropped,
    )


def check_classes(labels: pd.Series, train: pd.Series, holdout: pd.Series, cfg: DataConfig, *, span: str) -> None:
    """Refuse a window a classifier cannot learn from or be judged on, before anything is trained.

    A single class trains a model that can only answer that class, and its holdout scores look
    perfect (f1 1 on an all-0 holdout): the gate would promote it. So: at least two classes, each
    with ``data.min_rows_per_class`` rows, every one of them in the training split. A holdout that
    lacks a class is allowed (labels can change with time, and the simulator replays such windows);
    the gate judges both models on it alike. One :class:`InsufficientDataError` names the label
    column and the counts.
    """
    column = cfg.label_column
    counts = _class_counts(labels)
    if len(counts) < 2:
        only = _label(next(iter(counts))) if counts else "nothing"
        raise InsufficientDataError(
            f"label column {column!r} has a single class in the {len(labels):,} labelled row(s) {span} "
            f"({_shown(counts)}): a model trained on it can only answer {only}; check the label column "
            "and the source, or widen data.window"
        )
    rare = [k for k, v in counts.items() if v < cfg.min_rows_per_class]
    if rare:
        raise InsufficientDataError(
            f"label column {column!r} has fewer than data.min_rows_per_class ({cfg.min_rows_per_class}) rows of "
            f"class {', '.join(map(_label, rare))} in the {len(labels):,} labelled row(s) {span} ({_shown(counts)}): "
            "widen data.window, wait for more labelled data, or lower data.min_rows_per_class"
        )
    absent = [k for k in counts if k not in set(train)]
    if absent:  # every row of a class fell into the time holdout: the model would never see it
        raise InsufficientDataError(
            f"label column {column!r}: the training split has no row of class {', '.join(map(_label, absent))} "
            f"(training {_shown(_class_counts(train))}; holdout, the latest {cfg.holdout_fraction:.0%} by time, "
            f"{_shown(_class_counts(holdout))}) {span}: widen data.window or lower data.holdout_fraction"
        )


def _class_counts(labels: pd.Series) -> dict[Any, int]:
    """Rows per class, classes in sorted order (as Python values: ``0``, not ``np.int64(0)``)."""
    counts = labels.value_counts(sort=False)
    pairs = [(k.item() if hasattr(k, "item") else k, int(v)) for k, v in counts.items()]
    return dict(sorted(pairs, key=lambda kv: str(kv[0])))


def _shown(counts: Mapping[Any, int]) -> str:
    return ", ".join(f"{_label(k)}: {v:,}" for k, v in counts.items()) or "no rows"


def _label(value: Any) -> str:
    """A class as people write it: a float label column's ``0.0`` is class ``0``."""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# I/O: a flaky database connection deserves a few patient retries.
load_training_data_task = io_task(load_training_data, name="load")

__all__ = [
    "InsufficientDataError",
    "LabelledSource",
    "MissingColumnsError",
    "TrainingData",
    "TrainingDataError",
    "check_classes",
    "load_training_data",
    "load_training_data_task",
    "read_source_history",
    "split_training_data",
]
