"""Ingest-time histograms: feature counts on the champion's frozen bins, per hour.

Every prediction batch the writer stores is also counted, in the same transaction, on the
frozen bins of the model's current champion (``histogram_refs``; bins from
:func:`retrainer.stats.histogram.frozen_bins`), one row per (model, version, time bucket,
feature) in ``feature_histograms``. A drift check then sums the buckets of its window: a few
hundred small rows whatever the traffic (docs/fleet.md).

Consistency: counting merges into existing rows (read, add, write), so two writers of one model
must not interleave. SQLite write transactions are serialised already (BEGIN IMMEDIATE); on
PostgreSQL the writer and the re-binner take a per-model advisory transaction lock first. A
champion whose bins are not registered yet is not counted: :func:`retrainer.store.rebin`
registers it and counts the raw chunks once, under the same lock, so no row is missed or
counted twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from sqlalchemy.engine import Connection

from retrainer.stats.histogram import FeatureHistogram, FrozenBins, NumericBins, bins_from_dict
from retrainer.store.engine import driver_execute
from retrainer.windows import HistogramWindow

#: Width of a time bucket: a check's window is read in whole hours (see :func:`window_histograms`).
BUCKET_SECONDS = 3600.0
_I8 = np.dtype("<i8")
_COLUMNS = ("model_name", "version", "bucket_start", "feature", "n", "nulls", "sum", "sum_sq", "min", "max", "counts")


@dataclass(frozen=True, eq=False)
class CountingRef:
    """The bins a model's writes are counted on: its champion's."""

    version: str
    bucket_seconds: float
    complete_from: float
    registered_at: float | None
    bins: Mapping[str, FrozenBins]


class BinsCache:
    """Parsed bins by (model, version, created_at): a version's bins never change once written,
    so the writer pays one small indexed query per batch, not a JSON parse."""

    def __init__(self) -> None:
        self._refs: dict[tuple[str, str, float], CountingRef] = {}

    def get(self, key: tuple[str, str, float]) -> CountingRef | None:
        return self._refs.get(key)

    def put(self, key: tuple[str, str, float], ref: CountingRef) -> None:
        if len(self._refs) > 10_000:  # a fleet's worth; then start again rather than grow without bound
            self._refs.clear()
        self._refs[key] = ref


_shared: dict[str, BinsCache] = {}


def shared_cache(database: str) -> BinsCache:
    """One cache per database per process: every Store of one URL (a fleet worker opens several
    over a cycle) shares the parsed bins, which never change for a (model, version, created_at)."""
    return _shared.setdefault(database, BinsCache())


def lock_model(conn: Connection, model_name: str) -> None:
    """Serialise histogram merges of one model (PostgreSQL; SQLite writers are serial already)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", ("retrainer-histograms:" + model_name,))


_CHAMPION_REF = ("SELECT r.version, r.created_at FROM model_state s JOIN histogram_refs r "
                 "ON r.model_name = s.model_name AND r.version = s.champion_version WHERE s.model_name = ?")
_REF = "SELECT bins, bucket_seconds, complete_from, registered_at FROM histogram_refs WHERE model_name = ? AND version = ?"


def _load_ref(conn: Connection, model_name: str, version: str) -> CountingRef | None:
    rows = driver_execute(conn, _REF, (model_name, version))
    if not rows:
        return None
    bins, bucket_seconds, complete_from, registered_at = rows[0]
    data = json.loads(bins) if isinstance(bins, (str, bytes)) else bins
    return CountingRef(version, float(bucket_seconds), float(complete_from),
                       None if registered_at is None else float(registered_at),
                       {name: bins_from_dict(spec) for name, spec in data.items()})


def counting_ref(conn: Connection, model_name: str, version: str | None, cache: BinsCache | None) -> CountingRef | None:
    """The registered bins of ``version`` (default: the model's champion), or None."""
    if version is None:
        rows = driver_execute(conn, _CHAMPION_REF, (model_name,))
        if not rows:
            return None
        version, created_at = str(rows[0][0]), float(rows[0][1])
    else:
        rows = driver_execute(conn, "SELECT created_at FROM histogram_refs WHERE model_name = ? AND version = ?",
                              (model_name, version))
        if not rows:
            return None
        created_at = float(rows[0][0])
    key = (model_name, version, created_at)
    ref = cache.get(key) if cache is not None else None
    if ref is None:
        ref = _load_ref(conn, model_name, version)
        if ref is not None and cache is not None:
            cache.put(key, ref)
    return ref


def count_rows(
    ref: CountingRef, ts: np.ndarray, columns: Mapping[str, np.ndarray]
) -> list[tuple[float, str, FeatureHistogram]]:
    """(bucket_start, feature, counts) of these rows, per time bucket (a batch spans one or two)."""
    starts = np.floor(np.asarray(ts, dtype=np.float64) / ref.bucket_seconds) * ref.bucket_seconds
    buckets, inverse = np.unique(starts, return_inverse=True)
    if buckets.size == 1:
        slices = [(float(buckets[0]), slice(None))]
    else:
        order = np.argsort(inverse, kind="stable")
        ends = np.cumsum(np.bincount(inverse, minlength=buckets.size))
        slices = [(float(b), order[e - n: e]) for b, e, n in zip(buckets, ends, np.diff(np.concatenate([[0], ends])),
                                                                   strict=True)]
    out: list[tuple[float, str, FeatureHistogram]] = []
    for name, bins in ref.bins.items():
        if name in columns:  # a feature the config no longer logs keeps empty bins
            values = np.asarray(columns[name])
            out.extend((bucket, name, bins.count(values[rows])) for bucket, rows in slices)
    return out


@lru_cache(maxsize=32)
def _select_sql(n_buckets: int) -> str:
    return (f"SELECT bucket_start, feature, n, nulls, sum, sum_sq, min, max, counts FROM feature_histograms "
            f"WHERE model_name = ? AND version = ? AND bucket_start IN ({', '.join(['?'] * n_buckets)})")


@lru_cache(maxsize=64)
def _upsert_sql(n_rows: int) -> str:
    one = "(" + ", ".join(["?"] * len(_COLUMNS)) + ")"
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[4:])
    return (f"INSERT INTO feature_histograms ({', '.join(_COLUMNS)}) VALUES {', '.join([one] * n_rows)} "
            f"ON CONFLICT (model_name, version, bucket_start, feature) DO UPDATE SET {updates}")


def _nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else x


def _from_row(row: Sequence[Any]) -> FeatureHistogram:
    n, nulls, s, ss, lo, hi, blob = row[2:9]
    return FeatureHistogram(np.frombuffer(bytes(blob), dtype=_I8).copy(), int(n), int(nulls), float(s), float(ss),
                            float("nan") if lo is None else float(lo), float("nan") if hi is None else float(hi))


def add_counts(conn: Connection, model_name: str, ref: CountingRef, rows: list[tuple[float, str, FeatureHistogram]],
               *, merge: bool = True) -> None:
    """Add ``rows`` to the stored buckets (or write them as they are with ``merge=False``)."""
    if not rows:
        return
    merged = {(b, f): h for b, f, h in rows}
    if merge:
        buckets = sorted({b for b, _, _ in rows})
        for row in driver_execute(conn, _select_sql(len(buckets)), (model_name, ref.version, *buckets)):
            key = (float(row[0]), str(row[1]))
            if key in merged:
                merged[key] = merged[key] + _from_row(row)
    params: list[Any] = []
    for (bucket, feature), h in merged.items():
        params += [model_name, ref.version, bucket, feature, h.n, h.nulls, h.sum, h.sum_sq, _nan_to_none(h.min),
                   _nan_to_none(h.max), np.ascontiguousarray(h.counts, dtype=_I8).tobytes()]
    per = 2_000 // len(_COLUMNS)  # bound parameters per statement well under SQLite's limit
    items = len(merged)
    for i in range(0, items, per):
        n = min(per, items - i)
        driver_execute(conn, _upsert_sql(n), tuple(params[i * len(_COLUMNS): (i + n) * len(_COLUMNS)]))


def count_batch(conn: Connection, model_name: str, ts: np.ndarray, columns: Mapping[str, np.ndarray],
                cache: BinsCache | None) -> None:
    """The ingest hook: count a written batch on the champion's bins (nothing if none registered)."""
    lock_model(conn, model_name)
    ref = counting_ref(conn, model_name, None, cache)
    if ref is not None:
        add_counts(conn, model_name, ref, count_rows(ref, ts, columns))


_WINDOW = ("SELECT bucket_start, feature, n, nulls, sum, sum_sq, min, max, counts FROM feature_histograms "
           "WHERE model_name = ? AND version = ? AND bucket_start >= ? AND bucket_start < ?")


def window_histograms(
    conn: Connection, model_name: str, version: str, start: float, end: float, columns: Sequence[str] | None,
    cache: BinsCache | None = None,
) -> HistogramWindow | None:
    """The counts of every whole bucket inside ``[start, end)``, summed per feature.

    None when ``version`` has no registered bins, the window holds no whole bucket, or it
    reaches before the bins' ``complete_from`` (the caller then reads raw values). The window
    actually covered is ``[HistogramWindow.start, HistogramWindow.end)``: ``start`` rounded up
    and ``end`` rounded down to bucket boundaries, so nothing after ``end`` is ever read.
    """
    ref = counting_ref(conn, model_name, version, cache)
    if ref is None:
        return None
    bs = ref.bucket_seconds
    lo, hi = math.ceil(start / bs) * bs, math.floor(end / bs) * bs
    if hi <= lo or lo < ref.complete_from:
        return None
    names = [c for c in (columns if columns is not None else ref.bins) if c in ref.bins]
    rows_of: dict[str, list[Any]] = {name: [] for name in names}
    for row in driver_execute(conn, _WINDOW, (model_name, version, lo, hi)):
        if (bucket := rows_of.get(str(row[1]))) is not None:
            bucket.append(row)
    return HistogramWindow(
        start=lo, end=hi, version=version, bins={n: ref.bins[n] for n in names},
        histograms={n: _summed(rows_of[n], ref.bins[n].n_bins) for n in names},
        registered_at=ref.registered_at,
    )


def _summed(rows: list[Any], n_bins: int) -> FeatureHistogram:
    """The sum of one feature's bucket rows, in one numpy pass (a day is 24 rows, a month 720)."""
    if not rows:
        return FeatureHistogram(np.zeros(n_bins, dtype=np.int64), 0, 0)
    if len(rows) == 1:
        return _from_row(rows[0])
    counts = np.frombuffer(b"".join(bytes(r[8]) for r in rows), dtype=_I8).reshape(len(rows), n_bins).sum(axis=0)
    lows = [r[6] for r in rows if r[6] is not None]
    highs = [r[7] for r in rows if r[7] is not None]
    return FeatureHistogram(counts, sum(int(r[2]) for r in rows), sum(int(r[3]) for r in rows),
                            float(sum(r[4] for r in rows)), float(sum(r[5] for r in rows)),
                            float(min(lows)) if lows else float("nan"), float(max(highs)) if highs else float("nan"))


_MANY = 400  # models per IN list: bound parameters well under SQLite's limit


def window_histograms_many(
    conn: Connection, champions: Mapping[str, str], start: float, end: float, cache: BinsCache | None = None,
) -> dict[str, HistogramWindow | None]:
    """:func:`window_histograms` of many models (model -> champion version) in two queries per
    400 models, not two per model: what a fleet check reads per batch."""
    out: dict[str, HistogramWindow | None] = {m: None for m in champions}
    models = sorted(champions)
    for i in range(0, len(models), _MANY):
        part = models[i: i + _MANY]
        marks = ", ".join(["?"] * len(part))
        refs: dict[str, CountingRef] = {}
        for model, version, created_at in driver_execute(
                conn, f"SELECT model_name, version, created_at FROM histogram_refs WHERE model_name IN ({marks})", part):
            if champions.get(model) != version:
                continue
            key = (model, version, float(created_at))
            ref = cache.get(key) if cache is not None else None
            if ref is None:
                ref = _load_ref(conn, model, version)
                if ref is not None and cache is not None:
                    cache.put(key, ref)
            if ref is not None:
                refs[model] = ref
        spans = {}
        for model, ref in refs.items():
            bs = ref.bucket_seconds
            lo, hi = math.ceil(start / bs) * bs, math.floor(end / bs) * bs
            if lo < hi and lo >= ref.complete_from:
                spans[model] = (lo, hi)
        if not spans:
            continue
        lo_all, hi_all = min(s[0] for s in spans.values()), max(s[1] for s in spans.values())
        rows_of: dict[str, dict[str, list[Any]]] = {m: {f: [] for f in refs[m].bins} for m in spans}
        sql = (f"SELECT bucket_start, feature, n, nulls, sum, sum_sq, min, max, counts, model_name, version "
               f"FROM feature_histograms WHERE model_name IN ({', '.join(['?'] * len(spans))}) "
               "AND bucket_start >= ? AND bucket_start < ?")
        for row in driver_execute(conn, sql, (*spans, lo_all, hi_all)):
            model = str(row[9])
            lo, hi = spans[model]
            if row[10] == champions[model] and lo <= row[0] < hi and (feature := rows_of[model].get(str(row[1]))) is not None:
                feature.append(row)
        for model, (lo, hi) in spans.items():
            ref = refs[model]
            out[model] = HistogramWindow(
                start=lo, end=hi, version=ref.version, bins=dict(ref.bins),
                histograms={f: _summed(rows, ref.bins[f].n_bins) for f, rows in rows_of[model].items()},
                registered_at=ref.registered_at,
            )
    return out
