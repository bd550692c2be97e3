"""Turn incoming batches into checked columns, or reject them whole.

Records and DataFrames go through the same column checkers, so both paths accept and refuse
exactly the same values; a DataFrame just skips the row-to-column step and, for numeric
dtypes, the per-value loop. Every problem is collected (row index, field, what is wrong)
before anything is raised, and nothing reaches SQL unless the whole batch is clean.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

from retrainer.config import FeatureSpec
from retrainer.errors import ValidationError
from retrainer.identifiers import is_plain_identifier
from retrainer.store.records import LabelRecord, PredictionRecord, to_epoch

MAX_TEXT = 255
MAX_ARM = 32
_SHOWN = 20  # problems spelled out in the message; all of them are on .problems


class _Missing:
    """A feature absent from a record: reported once as missing, not again as null."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


@dataclass(frozen=True)
class PredictionBatch:
    """A validated batch, column by column (position i of every column is row i)."""

    model_name: str
    request_id: list[str]
    ts: np.ndarray
    prediction: np.ndarray
    score: np.ndarray  # NaN = no score
    model_version: list[str | None]
    unit_id: list[str | None]
    arm: list[str | None]
    ab_test_id: list[int | None]
    features: dict[str, np.ndarray]  # float64 (NaN missing) or object (None missing)
    kinds: dict[str, str]

    def __len__(self) -> int:
        return len(self.request_id)


def raise_if(problems: list[str], what: str) -> None:
    if not problems:
        return
    shown = problems[:_SHOWN]
    more = f"\n  ... and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
    noun = "problem" if len(problems) == 1 else "problems"
    raise ValidationError(
        f"{what} rejected, nothing was written ({len(problems)} {noun}):\n  - " + "\n  - ".join(shown) + more,
        problems,
    )


def _is_null(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def _row(i: int, field: str, what: str) -> str:
    return f"row {i}: {field}: {what}"


def check_model_name(model_name: Any, problems: list[str]) -> None:
    if not isinstance(model_name, str) or not model_name or len(model_name) > MAX_TEXT:
        problems.append(f"model_name: must be a non-empty string of at most {MAX_TEXT} characters, got {model_name!r}")


def check_specs(features: Sequence[FeatureSpec], problems: list[str]) -> None:
    seen: set[str] = set()
    if isinstance(features, (str, bytes)) or not isinstance(features, Iterable):
        problems.append("features: must be a sequence of FeatureSpec")
        return
    for spec in features:
        name = getattr(spec, "name", None)
        if not isinstance(name, str) or not is_plain_identifier(name):
            problems.append(
                f"feature {name!r}: not a plain SQL name (letters, digits, underscores; "
                "starting with a letter or underscore; at most 63 characters)"
            )
        elif name in seen:
            problems.append(f"feature {name!r}: listed twice in the feature specs")
        if getattr(spec, "type", None) not in ("numeric", "categorical"):
            problems.append(f"feature {name!r}: type must be 'numeric' or 'categorical', got {getattr(spec, 'type', None)!r}")
        if isinstance(name, str):
            seen.add(name)


def check_size(n: int, max_batch: int, what: str) -> None:
    if n > max_batch:
        raise_if([f"batch has {n} rows, more than max_batch={max_batch}: split it into smaller batches"], what)


# -- column checkers (shared by the record and the frame paths) -----------------------------


def numbers_column(field: str, values: Any, *, nullable: bool, problems: list[str]) -> np.ndarray:
    """float64 column; NaN marks missing. Rejects non-numbers, infinities and (unless
    ``nullable``) missing values."""
    if isinstance(values, list) and all(type(v) is float or type(v) is int for v in values):
        # The served case (plain floats and ints): one C conversion instead of a loop over objects.
        arr = np.array(values, dtype=np.float64)
    else:
        arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    if arr.dtype.kind in "biuf":
        out = arr.astype(np.float64, copy=False)
        skip = None
    else:
        out = np.empty(len(arr), dtype=np.float64)
        skip = np.zeros(len(arr), dtype=bool)
        for i, v in enumerate(arr):
            if v is MISSING:
                out[i], skip[i] = np.nan, True
            elif _is_null(v):
                out[i] = np.nan
            elif isinstance(v, numbers.Real):
                out[i] = float(v)
            else:
                out[i], skip[i] = np.nan, True
                problems.append(_row(i, field, f"expected a number, got {type(v).__name__} {v!r}"))
    if skip is None and bool(np.isfinite(out).all()):
        return out  # nothing infinite, nothing missing: no per-row checks to make
    for i in np.flatnonzero(np.isinf(out)):
        problems.append(_row(int(i), field, f"{out[i]} is not a finite number"))
    if not nullable:
        missing = np.isnan(out) if skip is None else np.isnan(out) & ~skip
        for i in np.flatnonzero(missing):
            problems.append(_row(int(i), field, "missing value (None/NaN) where none is allowed"))
    return out


def category_column(field: str, values: Any, *, nullable: bool, problems: list[str]) -> np.ndarray:
    """object column of str/int/bool; None marks missing."""
    arr = values if isinstance(values, np.ndarray) else np.asarray(values, dtype=object)
    out = np.empty(len(arr), dtype=object)
    for i, v in enumerate(arr):
        if v is MISSING:
            out[i] = None
        elif _is_null(v):
            out[i] = None
            if not nullable:
                problems.append(_row(i, field, "missing value (None/NaN) where none is allowed"))
        elif isinstance(v, (str, bool, int, np.integer, np.bool_)):
            out[i] = v.item() if isinstance(v, np.generic) else v
        else:
            out[i] = None
            problems.append(_row(i, field, f"expected a category (str, int or bool), got {type(v).__name__} {v!r}"))
    return out


def text_column(field: str, values: Any, *, required: bool, problems: list[str], max_len: int = MAX_TEXT) -> list[str | None]:
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    # The common case, checked in C: all strings, none empty or too long.
    if values and pd.api.types.infer_dtype(values, skipna=False) == "string":
        lengths = list(map(len, values))
        if min(lengths) > 0 and max(lengths) <= max_len:
            return values
    if not required and all(v is None for v in values):
        return values
    out: list[str | None] = []
    for i, v in enumerate(values):
        if _is_null(v):
            if required:
                problems.append(_row(i, field, "missing (a non-empty string is required)"))
            out.append(None)
        elif not isinstance(v, str):
            problems.append(_row(i, field, f"expected a string, got {type(v).__name__} {v!r}"))
            out.append(None)
        elif not v or len(v) > max_len:
            problems.append(_row(i, field, f"must be 1-{max_len} characters, got {len(v)}"))
            out.append(None)
        else:
            out.append(v)
    return out


def int_column(field: str, values: Any, problems: list[str]) -> list[int | None]:
    values = values.tolist() if isinstance(values, np.ndarray) else list(values)
    if all(v is None for v in values):
        return values
    out: list[int | None] = []
    for i, v in enumerate(values):
        if _is_null(v):
            out.append(None)
        elif isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real) or int(v) != v:
            problems.append(_row(i, field, f"expected an integer id, got {v!r}"))
            out.append(None)
        else:
            out.append(int(v))
    return out


def times_column(field: str, values: Any, problems: list[str]) -> np.ndarray:
    """Epoch seconds UTC from datetimes (naive ones are UTC) or a datetime64 Series."""
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values.dtype):
        s = values if values.dt.tz is not None else values.dt.tz_localize("UTC")
        out = (s - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(dtype=np.float64)
        for i in np.flatnonzero(np.isnan(out)):
            problems.append(_row(int(i), field, "missing timestamp"))
        return out
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        if isinstance(v, datetime) and v is not pd.NaT:
            out[i] = to_epoch(v)
        else:
            out[i] = np.nan
            problems.append(_row(i, field, f"expected a datetime, got {type(v).__name__} {v!r}"))
    return out


# -- predictions ----------------------------------------------------------------------------


def _build(model_name: str, raw: Mapping[str, Any], specs: Sequence[FeatureSpec], problems: list[str]) -> PredictionBatch:
    n = len(raw["request_id"])
    none = [None] * n
    features: dict[str, np.ndarray] = {}
    for spec in specs:
        col = raw["features"][spec.name]
        if spec.type == "numeric":
            features[spec.name] = numbers_column(spec.name, col, nullable=spec.nullable, problems=problems)
        else:
            features[spec.name] = category_column(spec.name, col, nullable=spec.nullable, problems=problems)
    score = raw.get("score")
    return PredictionBatch(
        model_name=model_name,
        request_id=text_column("request_id", raw["request_id"], required=True, problems=problems),  # type: ignore[arg-type]
        ts=times_column("ts", raw["ts"], problems),
        prediction=numbers_column("prediction", raw["prediction"], nullable=False, problems=problems),
        score=np.full(n, np.nan) if score is None else numbers_column("score", score, nullable=True, problems=problems),
        model_version=text_column("model_version", raw.get("model_version", none), required=False, problems=problems),
        unit_id=text_column("unit_id", raw.get("unit_id", none), required=False, problems=problems),
        arm=text_column("arm", raw.get("arm", none), required=False, problems=problems, max_len=MAX_ARM),
        ab_test_id=int_column("ab_test_id", raw.get("ab_test_id", none), problems),
        features=features,
        kinds={s.name: s.type for s in specs},
    )


def _preflight(model_name: str, specs: Sequence[FeatureSpec], n: int, max_batch: int, what: str) -> None:
    problems: list[str] = []
    check_model_name(model_name, problems)
    check_specs(specs, problems)
    raise_if(problems, what)  # bad names and specs first: no point reading rows against them
    check_size(n, max_batch, what)


def batch_from_records(
    model_name: str, records: Sequence[PredictionRecord], specs: Sequence[FeatureSpec], max_batch: int
) -> PredictionBatch:
    what = "prediction batch"
    _preflight(model_name, specs, len(records), max_batch, what)
    names = [s.name for s in specs]
    wanted = set(names)
    problems: list[str] = []
    cols: dict[str, list[Any]] = {k: [] for k in ("request_id", "ts", "prediction", "score", "model_version", "unit_id", "arm", "ab_test_id")}
    feats: dict[str, list[Any]] = {name: [] for name in names}
    for i, r in enumerate(records):
        if not isinstance(r, PredictionRecord):
            problems.append(_row(i, "record", f"expected a PredictionRecord, got {type(r).__name__}"))
            r = PredictionRecord(request_id="", features={}, prediction=math.nan, ts=None)  # type: ignore[arg-type]
        for k in cols:
            cols[k].append(getattr(r, k))
        given = r.features
        if not isinstance(given, Mapping):
            problems.append(_row(i, "features", f"expected a mapping of feature name to value, got {type(given).__name__}"))
            given = {}
        if given.keys() != wanted:
            for name in sorted(set(given) - wanted, key=str):
                problems.append(_row(i, f"feature {name!r}", "unknown feature (not in the model's feature specs)"))
            for name in names:
                if name not in given:
                    problems.append(_row(i, f"feature {name!r}", "missing"))
        for name in names:
            feats[name].append(given.get(name, MISSING))
    batch = _build(model_name, {**cols, "features": feats}, specs, problems)
    raise_if(problems, what)
    return batch


_FRAME_COLUMNS = ("request_id", "ts", "prediction", "score", "model_version", "unit_id", "arm", "ab_test_id")


def _frame_values(series: pd.Series) -> Any:
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        return series
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy(dtype=object)


def batch_from_frame(model_name: str, frame: pd.DataFrame, specs: Sequence[FeatureSpec], max_batch: int) -> PredictionBatch:
    what = "prediction frame"
    if not isinstance(frame, pd.DataFrame):
        raise_if([f"frame: expected a pandas DataFrame, got {type(frame).__name__}"], what)
    _preflight(model_name, specs, len(frame), max_batch, what)
    names = [s.name for s in specs]
    problems: list[str] = []
    for col in frame.columns:
        if col not in _FRAME_COLUMNS and col not in names:
            problems.append(f"column {col!r}: unknown (not a prediction field nor in the model's feature specs)")
    for col in ("request_id", "ts", "prediction", *names):
        if col not in frame.columns:
            problems.append(f"column {col!r}: missing")
    if frame.columns.duplicated().any():
        problems.append(f"columns repeated: {sorted(set(frame.columns[frame.columns.duplicated()]))}")
    raise_if(problems, what)
    raw: dict[str, Any] = {c: _frame_values(frame[c]) for c in _FRAME_COLUMNS if c in frame.columns}
    if "ts" in raw and not isinstance(raw["ts"], pd.Series):
        raw["ts"] = frame["ts"].to_numpy(dtype=object)
    for c in ("request_id", "model_version", "unit_id", "arm", "ab_test_id"):
        if c in raw and not (isinstance(raw[c], np.ndarray) and raw[c].dtype == object):
            raw[c] = frame[c].to_numpy(dtype=object)
    raw["features"] = {name: _frame_values(frame[name]) for name in names}
    batch = _build(model_name, raw, specs, problems)
    raise_if(problems, what)
    return batch


# -- labels ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelBatch:
    request_id: list[str]
    label: np.ndarray
    ts: np.ndarray


# How far ahead of its receive time a label's time may be (``store.max_label_clock_skew``).
DEFAULT_LABEL_CLOCK_SKEW = timedelta(minutes=5)


def labels_from_records(
    records: Sequence[LabelRecord],
    max_batch: int,
    *,
    received_at: datetime | None = None,
    max_skew: timedelta = DEFAULT_LABEL_CLOCK_SKEW,
) -> LabelBatch:
    """Checked label columns. Label times are bounded by the receive time (default: now):
    the latest label time wins a conflict, so one from a wrong clock (year 2999) would outrank
    every later correction. Beyond ``max_skew`` it is refused; within it, stored as received."""
    what = "label batch"
    check_size(len(records), max_batch, what)
    problems: list[str] = []
    rids, values, times = [], [], []
    for i, r in enumerate(records):
        if not isinstance(r, LabelRecord):
            problems.append(_row(i, "record", f"expected a LabelRecord, got {type(r).__name__}"))
            rids.append(None), values.append(None), times.append(None)
            continue
        rids.append(r.request_id), values.append(r.label), times.append(r.ts)
    batch = LabelBatch(
        request_id=text_column("request_id", rids, required=True, problems=problems),  # type: ignore[arg-type]
        label=numbers_column("label", values, nullable=False, problems=problems),
        ts=times_column("ts", times, problems),
    )
    received = time.time() if received_at is None else to_epoch(received_at)
    clamp_label_times(batch.ts, received, max_skew.total_seconds(), problems)
    raise_if(problems, what)
    return batch


def check_label_classes(labels: Sequence[float], classes: Sequence[Any] | None, problems: list[str]) -> None:
    """A classifier's label must be one of its classes (0.5, 7 or -1e300 are not a class of a 0/1
    model: stored, they would poison every metric). ``classes`` None or not numeric: no check."""
    if classes is None or len(classes) == 0:
        return
    try:
        known = {float(c) for c in classes}
    except (TypeError, ValueError):
        return  # string classes: the store's float labels cannot name them, nothing to compare
    shown = ", ".join(f"{c:g}" for c in sorted(known))
    for i, label in enumerate(labels):
        if label not in known:
            problems.append(_row(i, "label", f"{label!r} is not a class of the model ({shown})"))


def clamp_label_times(ts: np.ndarray, received: float, max_skew: float, problems: list[str]) -> None:
    """In place: a time ahead of ``received`` by at most ``max_skew`` becomes ``received``; beyond, a problem."""
    ahead = ts - received
    for i in np.flatnonzero(ahead > max_skew):
        when = datetime.fromtimestamp(float(ts[i]), timezone.utc).isoformat()
        problems.append(_row(int(i), "ts", f"{when} is {ahead[i] / 60:.0f} min after the label was received; "
                             f"more than the allowed clock skew of {max_skew / 60:g} min (fix the sender's clock)"))
    np.minimum(ts, received, out=ts, where=ahead > 0)
