"""The inference log: batched, idempotent prediction writes and the window reads triggers need.

Feature values are stored column by column per ingest batch (see docs/store-layout.md):
reading a 1M-row window of 20 features is a few hundred blob reads and ``np.frombuffer``,
not 20M Python objects.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from typing import Any
from datetime import datetime

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.identifiers import validate_identifier
from retrainer.store.engine import driver_execute
from retrainer.store.histograms import BinsCache, count_batch
from retrainer.store.records import FeatureWindow, LabelledWindow, WriteResult, to_epoch
from retrainer.store.labels import lock_label_matching, sync_predictions
from retrainer.store.schema import ab_tests, feature_chunk_columns, feature_chunks, predictions
from retrainer.store.validation import PredictionBatch, raise_if

_F8 = np.dtype("<f8")
_I8 = np.dtype("<i8")


# -- writes ---------------------------------------------------------------------------------


# Statements built once: SQLAlchemy then reuses their compiled form (found by cache key) instead
# of rebuilding and re-hashing a new statement per write; that fixed cost dominated small
# (group-commit sized) batches.
_KNOWN_AB_TESTS = sa.select(ab_tests.c.id).where(ab_tests.c.id.in_(sa.bindparam("ids", expanding=True)))
# Fixed SQL on the driver's cursor (see driver_execute): the per-transaction statements of a write.
_INSERT_CHUNK = ("INSERT INTO feature_chunks (model_name, ts_min, ts_max, n_rows, prediction_ids, ts, created_at) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id")


@lru_cache(maxsize=16)
def _insert_chunk_columns_sql(n: int) -> str:
    return f"INSERT INTO feature_chunk_columns (chunk_id, feature, encoding, data) VALUES {', '.join(['(?, ?, ?, ?)'] * n)}"


def _check_ab_tests(conn: Connection, batch: PredictionBatch, seen: set[int]) -> None:
    """Every ab_test_id names a stored A/B test (a clear error, before the foreign key's).

    ``seen`` holds ids already found: A/B tests are never deleted, so a served batch (one
    test id, found on the first write) costs no query; the foreign key still guards."""
    wanted = {i for i in batch.ab_test_id if i is not None} - seen
    if not wanted:
        return
    known = set(conn.execute(_KNOWN_AB_TESTS, {"ids": sorted(wanted)}).scalars())
    problems = [
        f"row {i}: ab_test_id: no A/B test with id {v}" for i, v in enumerate(batch.ab_test_id) if v is not None and v not in known
    ]
    raise_if(problems, "prediction batch")  # raised inside the transaction: it rolls back
    seen.update(known)


def _encode(values: np.ndarray, kind: str) -> tuple[str, bytes]:
    if kind == "numeric":
        return "f8", np.ascontiguousarray(values, dtype=_F8).tobytes()
    return "json", json.dumps(values.tolist(), separators=(",", ":")).encode()


def _decode(encoding: str, data: bytes, n: int) -> np.ndarray:
    if encoding == "f8":
        return np.frombuffer(data, dtype=_F8, count=n)
    out = np.empty(n, dtype=object)
    out[:] = json.loads(data)
    return out


_PRED_COLUMNS = ("request_id", "model_name", "model_version", "unit_id", "arm", "ts", "prediction", "score", "ab_test_id")
_PAGE = 1_000  # rows per INSERT: 9,000 bound parameters, under SQLite's 32,766


@lru_cache(maxsize=8)
def _insert_sql(rows: int) -> str:
    one = "(" + ", ".join(["?"] * len(_PRED_COLUMNS)) + ")"
    return (
        f"INSERT INTO predictions ({', '.join(_PRED_COLUMNS)}) VALUES {', '.join([one] * rows)} "
        "ON CONFLICT (request_id) DO NOTHING RETURNING id, request_id"
    )


_PG_INSERT = (
    f"INSERT INTO predictions ({', '.join(_PRED_COLUMNS)}) "
    "SELECT * FROM unnest(%b::varchar[], %b::varchar[], %b::varchar[], %b::varchar[], %b::varchar[], "
    "%b::float8[], %b::float8[], %b::float8[], %b::bigint[]) "
    "ON CONFLICT (request_id) DO NOTHING RETURNING id, request_id"
)


def _insert_predictions(conn: Connection, rows: list[tuple[object, ...]]) -> list[tuple[int, str]]:
    """INSERT ... ON CONFLICT (request_id) DO NOTHING RETURNING id, request_id.

    Fixed SQL text (no name in it comes from input) sent through the driver's own cursor on the
    same connection, i.e. inside the transaction SQLAlchemy began: SQLAlchemy's per-parameter
    executemany processing cost more than the insert itself at 5,000-row batches. SQLite gets
    multi-row VALUES pages; PostgreSQL one statement over unnest(arrays) (psycopg re-parses a
    query with thousands of placeholders on every call). Only inserted rows come back.
    """
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute(_PG_INSERT, [list(col) for col in zip(*rows, strict=True)])
            return cursor.fetchall()
        out: list[tuple[int, str]] = []
        for i in range(0, len(rows), _PAGE):
            page = rows[i : i + _PAGE]
            cursor.execute(_insert_sql(len(page)), tuple(chain.from_iterable(page)))
            out.extend(cursor.fetchall())
        return out
    finally:
        cursor.close()


def write_batch(conn: Connection, batch: PredictionBatch, known_ab_tests: set[int] | None = None,
                bins_cache: BinsCache | None = None) -> WriteResult:
    """Insert new predictions, skip request ids already stored, and store the features of the
    rows actually inserted as one chunk, counted on the champion's frozen bins
    (store/histograms.py). Runs inside the caller's (write) transaction.
    ``known_ab_tests``: A/B test ids already found to exist (see _check_ab_tests); grows.
    ``bins_cache``: parsed bins already read (the Store keeps one)."""
    n = len(batch)
    if n == 0:
        return WriteResult(inserted=0, duplicates=0)
    _check_ab_tests(conn, batch, set() if known_ab_tests is None else known_ab_tests)
    lock_label_matching(conn, shared=True)
    score = [None if s != s else float(s) for s in batch.score.tolist()]  # NaN -> NULL
    rows = list(
        zip(
            batch.request_id,
            [batch.model_name] * n,
            batch.model_version,
            batch.unit_id,
            batch.arm,
            batch.ts.tolist(),
            batch.prediction.tolist(),
            score,
            batch.ab_test_id,
            strict=True,
        )
    )
    inserted = _insert_predictions(conn, rows)
    if not inserted:
        return WriteResult(inserted=0, duplicates=n, duplicate_ids=tuple(batch.request_id))
    # A label may have arrived before its prediction: copy it onto the new row now.
    sync_predictions(conn, [rid for _, rid in inserted])

    # Map returned request ids back to batch positions; a request id repeated inside the
    # batch is inserted once (its first occurrence) and the rest count as duplicates.
    first: dict[str, int] = {}
    for i, rid in enumerate(batch.request_id):
        first.setdefault(rid, i)
    pos = np.array([first[rid] for _, rid in inserted], dtype=np.int64)
    ids = np.array([pid for pid, _ in inserted], dtype=_I8)
    order = np.argsort(pos, kind="stable")
    pos, ids = pos[order], ids[order]
    ts = batch.ts[pos]

    ((chunk_id,),) = driver_execute(conn, _INSERT_CHUNK, (
        batch.model_name, float(ts.min()), float(ts.max()), len(pos), ids.tobytes(),
        np.ascontiguousarray(ts, dtype=_F8).tobytes(), time.time(),
    ))
    written_values = {name: values[pos] for name, values in batch.features.items()}
    columns = [(chunk_id, name, *_encode(values, batch.kinds[name])) for name, values in written_values.items()]
    if columns:  # one multi-row statement: executemany steps (and releases the GIL) once per feature
        driver_execute(conn, _insert_chunk_columns_sql(len(columns)), tuple(chain.from_iterable(columns)))
    count_batch(conn, batch.model_name, ts, written_values, bins_cache)
    written = set(pos.tolist())
    dup_ids = tuple(rid for i, rid in enumerate(batch.request_id) if i not in written) if len(pos) < n else ()
    return WriteResult(inserted=len(pos), duplicates=n - len(pos), duplicate_ids=dup_ids)


def stored_answers(conn: Connection, model_name: str, request_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What was answered for these request ids when they were first stored (prediction, score, version, arm)."""
    q = sa.select(predictions.c.request_id, predictions.c.prediction, predictions.c.score,
                  predictions.c.model_version, predictions.c.arm).where(
        predictions.c.model_name == model_name, predictions.c.request_id.in_(list(request_ids)))
    return {r.request_id: {"prediction": r.prediction, "score": r.score, "model_version": r.model_version, "arm": r.arm}
            for r in conn.execute(q)}


# -- reads ----------------------------------------------------------------------------------


def features_window(
    conn: Connection, model_name: str, start: datetime, end: datetime, columns: Sequence[str]
) -> FeatureWindow:
    """Features of predictions with start <= ts < end, only the columns asked for, by ts.

    A column that no chunk in the window has (a feature added later) comes back all missing.
    """
    names = [validate_identifier(c, "feature column") for c in columns]
    lo, hi = to_epoch(start), to_epoch(end)
    chunk_rows = _fetch(
        conn,
        sa.select(feature_chunks.c.id, feature_chunks.c.n_rows, feature_chunks.c.ts, feature_chunks.c.prediction_ids)
        .where(feature_chunks.c.model_name == model_name, feature_chunks.c.ts_max >= lo, feature_chunks.c.ts_min < hi)
        .order_by(feature_chunks.c.id),
    )
    if not chunk_rows:
        empty = np.empty(0, dtype=np.float64)
        return FeatureWindow(ts=empty, columns={c: empty.copy() for c in names}, prediction_ids=np.empty(0, dtype=np.int64))
    blobs: dict[tuple[int, str], tuple[str, bytes]] = {}
    if names:
        chunk_ids = [r.id for r in chunk_rows]
        for i in range(0, len(chunk_ids), 500):  # keep bound parameters well under SQLite's limit
            q = sa.select(
                feature_chunk_columns.c.chunk_id,
                feature_chunk_columns.c.feature,
                feature_chunk_columns.c.encoding,
                feature_chunk_columns.c.data,
            ).where(
                feature_chunk_columns.c.chunk_id.in_(chunk_ids[i : i + 500]),
                feature_chunk_columns.c.feature.in_(names),
            )
            for cid, feat, enc, data in _fetch(conn, q):
                blobs[(cid, feat)] = (enc, data)

    ts_parts, id_parts, masks = [], [], []
    col_parts: dict[str, list[np.ndarray]] = {c: [] for c in names}
    for r in chunk_rows:
        ts = np.frombuffer(r.ts, dtype=_F8, count=r.n_rows)
        mask = (ts >= lo) & (ts < hi)
        full = bool(mask.all())
        ts_parts.append(ts if full else ts[mask])
        ids = np.frombuffer(r.prediction_ids, dtype=_I8, count=r.n_rows)
        id_parts.append(ids if full else ids[mask])
        masks.append(mask)
        for c in names:
            enc_data = blobs.get((r.id, c))
            values = _decode(*enc_data, r.n_rows) if enc_data else np.full(r.n_rows, np.nan)
            col_parts[c].append(values if full else values[mask])
    ts_all = np.concatenate(ts_parts)
    ids_all = np.concatenate(id_parts)
    cols = {c: _concat(parts) for c, parts in col_parts.items()}
    if ts_all.size > 1 and not bool(np.all(ts_all[1:] >= ts_all[:-1])):
        order = np.argsort(ts_all, kind="stable")
        ts_all, ids_all = ts_all[order], ids_all[order]
        cols = {c: v[order] for c, v in cols.items()}
    return FeatureWindow(ts=ts_all, columns=cols, prediction_ids=ids_all)


def _fetch(conn: Connection, query: sa.Select) -> list:  # type: ignore[type-arg]
    """Run a blob-heavy SELECT. On PostgreSQL ask psycopg for binary results: in text format
    bytea travels hex-encoded (twice the bytes) and is decoded in Python."""
    if conn.dialect.name != "postgresql":
        return conn.execute(query).all()
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    cursor = conn.connection.dbapi_connection.cursor(binary=True)  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), compiled.params)
        names = [d.name for d in cursor.description]
        return [_Rec(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]
    finally:
        cursor.close()


class _Rec(dict):  # type: ignore[type-arg]
    """Attribute access like a SQLAlchemy Row, and tuple-style unpacking in column order."""

    __getattr__ = dict.__getitem__

    def __iter__(self):  # type: ignore[override]
        return iter(self.values())


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    if any(p.dtype == object for p in parts):
        return np.concatenate([p.astype(object) for p in parts])
    return np.concatenate(parts)


def _window(model_name: str, lo: float, hi: float, model_version: str | None) -> list[sa.ColumnElement[bool]]:
    where = [predictions.c.model_name == model_name, predictions.c.ts >= lo, predictions.c.ts < hi]
    if model_version is not None:
        where.append(predictions.c.model_version == model_version)
    return where


# Scores are finite or NULL (validation rejects infinities), so -inf can stand for NULL on
# the way out: the rows then go straight into a float64 array with no per-value None check.
_NO_SCORE = float("-inf")


def labelled_rows(
    conn: Connection,
    model_name: str,
    start: datetime,
    end: datetime,
    as_of: datetime,
    model_version: str | None,
    *,
    ids: bool = True,
    unlabelled: bool = False,
) -> tuple[np.ndarray, int]:
    """(id, ts, prediction, score, label) rows of the window whose label is known at as_of,
    as a float64 matrix ordered by (ts, id), and the number of predictions in the window.
    With ``ids=False`` the id column is all NaN (not fetched: ~20% of the read). With
    ``unlabelled`` every prediction of the window comes back, label NaN where it was not known at as_of.

    One range scan of the covering index ``ix_predictions_window`` (with a model_version the
    rows are looked up too); the rows go from the driver cursor into numpy without
    SQLAlchemy Row objects in between, which cost more than the query at 1M rows.
    """
    lo, hi = to_epoch(start), to_epoch(end)
    where = _window(model_name, lo, hi, model_version)
    p = predictions.c
    score = sa.func.coalesce(p.score, sa.literal(_NO_SCORE, sa.Double))
    known = p.label_ts <= to_epoch(as_of)
    label = sa.func.coalesce(sa.case((known, p.label)), sa.literal(_NO_SCORE, sa.Double)) if unlabelled else p.label
    cols = [p.id, p.ts, p.prediction, score, label] if ids else [p.ts, p.prediction, score, label]
    q = sa.select(*cols).where(*where, *(() if unlabelled else (known,))).order_by(p.ts, p.id)
    compiled = q.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.params
    if compiled.positional:  # SQLite's qmark style
        params = tuple(params[k] for k in compiled.positiontup)  # type: ignore[union-attr]
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        rows = np.fromiter(cursor, dtype=_ROW5 if ids else _ROW4, count=-1).view(np.float64).reshape(-1, len(cols))
    finally:
        cursor.close()
    matrix = rows if ids else np.column_stack([np.full(rows.shape[0], np.nan), rows])
    matrix[matrix[:, 3] == _NO_SCORE, 3] = np.nan
    if unlabelled:
        matrix[matrix[:, 4] == _NO_SCORE, 4] = np.nan
    total = conn.execute(sa.select(sa.func.count()).select_from(predictions).where(*where)).scalar_one()
    return matrix, int(total)


_ROW5 = np.dtype([(name, np.float64) for name in ("id", "ts", "prediction", "score", "label")])
_ROW4 = np.dtype([(name, np.float64) for name in ("ts", "prediction", "score", "label")])


def labelled_window(
    conn: Connection, model_name: str, start: datetime, end: datetime, as_of: datetime, model_version: str | None
) -> LabelledWindow:
    m, total = labelled_rows(conn, model_name, start, end, as_of, model_version, ids=False)
    return LabelledWindow(y_true=m[:, 4], y_pred=m[:, 2], score=m[:, 3], ts=m[:, 1], n_predictions=total)


def scored_window(
    conn: Connection, model_name: str, start: datetime, end: datetime, as_of: datetime, model_version: str | None
) -> LabelledWindow:
    """Every prediction of [start, end) with its score; ``y_true`` NaN where no label was known at as_of."""
    m, total = labelled_rows(conn, model_name, start, end, as_of, model_version, ids=False, unlabelled=True)
    return LabelledWindow(y_true=m[:, 4], y_pred=m[:, 2], score=m[:, 3], ts=m[:, 1], n_predictions=total)


def labelled_frame(
    conn: Connection, model_name: str, start: datetime, end: datetime, as_of: datetime, columns: Sequence[str]
) -> pd.DataFrame:
    """Features + prediction + label + ts of the matured labelled predictions: training rows."""
    m, _ = labelled_rows(conn, model_name, start, end, as_of, None)
    window = features_window(conn, model_name, start, end, columns)
    ids = m[:, 0].astype(np.int64)
    order = np.argsort(window.prediction_ids, kind="stable")
    sorted_ids = window.prediction_ids[order]
    at = np.searchsorted(sorted_ids, ids)
    found = at < sorted_ids.size
    found[found] = sorted_ids[at[found]] == ids[found]
    take = order[at[found]]  # every logged prediction has its features; guard anyway
    frame = pd.DataFrame({c: window.columns[c][take] for c in window.columns})
    frame["prediction"] = m[found, 2]
    frame["label"] = m[found, 4]
    frame["ts"] = pd.to_datetime(m[found, 1], unit="s", utc=True)
    return frame


def count_predictions(
    conn: Connection, model_name: str, since: datetime, until: datetime, *, labelled: bool, as_of: datetime | None
) -> int:
    where = _window(model_name, to_epoch(since), to_epoch(until), None)
    if labelled:
        label_ts = predictions.c.label_ts
        where.append(label_ts.is_not(None) if as_of is None else label_ts <= to_epoch(as_of))
    return int(conn.execute(sa.select(sa.func.count()).select_from(predictions).where(*where)).scalar_one())
