"""Chunk compaction: merge runs of small feature chunks into big ones.

A writer that flushes small batches leaves one ``feature_chunks`` row (and one blob per
feature) per flush; window reads then pay per chunk. :func:`compact_chunks` rewrites runs of
small, old chunks of one model as chunks of about ``target_rows`` rows.

Invariants (docs/store-layout.md, "Compaction"):

* A merged group is consecutive in the model's chunks ordered by id (the order the reader
  concatenates them in) and the merged chunk takes the smallest id of its group, rows in the
  same order: a window read returns the same arrays, in the same order, before and after.
* Each group is replaced in one write transaction that first checks its chunks are still
  exactly the ones planned (id, n_rows, created_at; ``FOR UPDATE`` on PostgreSQL,
  ``BEGIN IMMEDIATE`` on SQLite): a concurrent compactor that got there first makes this one
  skip the group, so nothing is merged twice. Readers see the old chunks or the new one.
* Chunks are immutable once written (ingest only adds new ones, with larger ids), so the
  blobs are read outside the write transaction and the write lock is held only to check,
  delete and insert.
* Columns: blobs are concatenated byte for byte (float64 and JSON lists alike). A numeric
  column missing from some chunks of a group is filled with NaN, which is what the reader
  returns for it anyway; a categorical column missing from some chunks, or one feature stored
  with two encodings, ends the group there (the reader's answer would change dtype).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from retrainer.store.engine import read_tx, write_tx
from retrainer.store.records import to_epoch
from retrainer.store.schema import feature_chunk_columns, feature_chunks

_F8 = np.dtype("<f8")


@dataclass(frozen=True)
class CompactionResult:
    """What one :func:`compact_chunks` call did for one model."""

    model_name: str
    chunks_before: int  # chunks of the model when planning started
    chunks_after: int  # chunks_before - chunks removed by this call (concurrent ingest not counted)
    rows: int  # rows rewritten into merged chunks
    groups: int = 0  # merged chunks written
    skipped: int = 0  # groups left alone: changed under us (another compactor won)

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model_name,
            "chunks_before": self.chunks_before,
            "chunks_after": self.chunks_after,
            "rows": self.rows,
            "groups": self.groups,
            "skipped": self.skipped,
        }


@dataclass(frozen=True)
class _Chunk:
    id: int
    n_rows: int
    created_at: float


def plan_groups(
    chunks: list[tuple[int, int, float, float]], *, before: float | None, target_rows: int
) -> list[list[_Chunk]]:
    """Greedy groups of consecutive (by id) small chunks: ``chunks`` are (id, n_rows, ts_max,
    created_at) ordered by id. A chunk with ts_max >= before or n_rows >= target_rows ends the
    current group and stays as it is; a group closes before it would exceed target_rows.
    Only groups of two or more chunks are returned. Running it again on its own output
    returns nothing (two neighbouring groups together exceed target_rows)."""
    groups: list[list[_Chunk]] = []
    current: list[_Chunk] = []
    rows = 0

    def close() -> None:
        nonlocal current, rows
        if len(current) > 1:
            groups.append(current)
        current, rows = [], 0

    for cid, n, ts_max, created in chunks:
        if n >= target_rows or (before is not None and ts_max >= before):
            close()
            continue
        if current and rows + n > target_rows:
            close()
        current.append(_Chunk(cid, n, created))
        rows += n
    close()
    return groups


def compact_chunks(
    engine: Engine, model_name: str, *, before: datetime | None = None, target_rows: int = 50_000
) -> CompactionResult:
    """Merge the model's small chunks with ts_max < ``before`` (all when None) into chunks of
    about ``target_rows`` rows; one write transaction per merged chunk. Idempotent; safe next
    to ingest and next to another compactor."""
    if target_rows < 2:
        raise ValueError("target_rows must be at least 2")
    fc = feature_chunks.c
    with read_tx(engine) as conn:
        listing = [
            tuple(r)
            for r in conn.execute(
                sa.select(fc.id, fc.n_rows, fc.ts_max, fc.created_at).where(fc.model_name == model_name).order_by(fc.id)
            )
        ]
    groups = plan_groups(listing, before=None if before is None else to_epoch(before), target_rows=target_rows)  # type: ignore[arg-type]
    removed = rows = written = skipped = 0
    for group in groups:
        parts = _load_and_split(engine, model_name, group)
        if not parts:
            skipped += 1
        for part in parts:
            if len(part.chunks) < 2:
                continue
            if _replace(engine, model_name, part):
                removed += len(part.chunks) - 1
                rows += part.n_rows
                written += 1
            else:
                skipped += 1
    return CompactionResult(model_name, len(listing), len(listing) - removed, rows, written, skipped)


@dataclass
class _Merged:
    chunks: list[_Chunk]
    ts: list[bytes]
    ids: list[bytes]
    ts_min: float
    ts_max: float
    columns: dict[str, tuple[str, list[bytes | int]]]  # feature -> (encoding, parts; int = n missing rows)

    @property
    def n_rows(self) -> int:
        return sum(c.n_rows for c in self.chunks)


def _compatible(have: dict[str, str], sig: dict[str, str]) -> bool:
    for feature in have.keys() | sig.keys():
        a, b = have.get(feature), sig.get(feature)
        if a is not None and b is not None:
            if a != b:
                return False
        elif (a or b) != "f8":  # only numeric columns may be missing from some chunks
            return False
    return True


def _load_and_split(engine: Engine, model_name: str, group: list[_Chunk]) -> list[_Merged]:
    """Read the group's blobs (chunks are immutable: no write lock needed) and split it where
    the column sets are not compatible. A group with a chunk already gone (another compactor)
    leaves the whole group alone."""
    from retrainer.store.predictions import _fetch

    lo, hi = group[0].id, group[-1].id
    fc, cc = feature_chunks.c, feature_chunk_columns.c
    in_range = sa.and_(fc.model_name == model_name, fc.id >= lo, fc.id <= hi)
    with read_tx(engine) as conn:
        chunk_rows = {
            r.id: r for r in _fetch(conn, sa.select(fc.id, fc.n_rows, fc.ts_min, fc.ts_max, fc.ts, fc.prediction_ids).where(in_range))
        }
        cols: dict[int, dict[str, tuple[str, bytes]]] = {}
        q = (
            sa.select(cc.chunk_id, cc.feature, cc.encoding, cc.data)
            .select_from(feature_chunk_columns.join(feature_chunks, fc.id == cc.chunk_id))
            .where(in_range)
        )
        for cid, feature, encoding, data in _fetch(conn, q):
            cols.setdefault(cid, {})[feature] = (encoding, data)

    parts: list[_Merged] = []
    current: _Merged | None = None
    sig_have: dict[str, str] = {}
    if any(chunk.id not in chunk_rows or chunk_rows[chunk.id].n_rows != chunk.n_rows for chunk in group):
        return []  # changed since planning (another compactor): leave the whole group alone
    for chunk in group:
        r = chunk_rows[chunk.id]
        chunk_cols = cols.get(chunk.id, {})
        sig = {f: enc for f, (enc, _) in chunk_cols.items()}
        if current is None or not _compatible(sig_have, sig):
            current = _Merged([], [], [], float("inf"), float("-inf"), {})
            parts.append(current)
            sig_have = {}
        prior_rows = current.n_rows
        current.chunks.append(chunk)
        current.ts.append(bytes(r.ts))
        current.ids.append(bytes(r.prediction_ids))
        current.ts_min = min(current.ts_min, r.ts_min)
        current.ts_max = max(current.ts_max, r.ts_max)
        for feature, (encoding, data) in chunk_cols.items():
            if feature not in current.columns:
                current.columns[feature] = (encoding, [prior_rows] if prior_rows else [])
            current.columns[feature][1].append(bytes(data))
        for feature, (_, pieces) in current.columns.items():
            if feature not in chunk_cols:
                pieces.append(chunk.n_rows)  # numeric column absent from this chunk: NaN
        sig_have.update(sig)
    return parts


def _column_blob(encoding: str, pieces: list[bytes | int]) -> bytes:
    if encoding == "f8":
        nan = np.full(1, np.nan, dtype=_F8).tobytes()
        return b"".join(p if isinstance(p, bytes) else nan * p for p in pieces)
    # JSON lists: splice the element texts, so values come back exactly as they went in.
    # (_compatible guarantees no missing rows for a JSON column.)
    inner = [p.strip()[1:-1].strip() for p in pieces if isinstance(p, bytes)]
    return b"[" + b",".join(i for i in inner if i) + b"]"


def _replace(engine: Engine, model_name: str, merged: _Merged) -> bool:
    """One transaction: check the group's chunks are still exactly the planned ones, delete
    them, insert the merged chunk under the smallest id. False (nothing written) if not."""
    ids = [c.id for c in merged.chunks]
    lo, hi = ids[0], ids[-1]
    fc = feature_chunks.c
    # Rows of other models may sit between lo and hi; chunks of this model added later have
    # larger ids than any existing one, so the range holds the group and nothing else - unless
    # the group changed, which the comparison below catches.
    in_range = sa.and_(fc.model_name == model_name, fc.id >= lo, fc.id <= hi)
    columns = [
        {"chunk_id": lo, "feature": feature, "encoding": encoding, "data": _column_blob(encoding, pieces)}
        for feature, (encoding, pieces) in merged.columns.items()
    ]
    with write_tx(engine) as conn:
        if not _still_there(conn, in_range, merged.chunks):
            return False
        conn.execute(
            sa.delete(feature_chunk_columns).where(
                feature_chunk_columns.c.chunk_id.in_(sa.select(fc.id).where(in_range).scalar_subquery())
            )
        )
        conn.execute(sa.delete(feature_chunks).where(in_range))
        conn.execute(
            sa.insert(feature_chunks).values(
                id=lo,
                model_name=model_name,
                ts_min=merged.ts_min,
                ts_max=merged.ts_max,
                n_rows=merged.n_rows,
                prediction_ids=b"".join(merged.ids),
                ts=b"".join(merged.ts),
                created_at=time.time(),
            )
        )
        if columns:
            conn.execute(sa.insert(feature_chunk_columns), columns)
    return True


def _still_there(conn: Connection, in_range: sa.ColumnElement[bool], planned: list[_Chunk]) -> bool:
    fc = feature_chunks.c
    q = sa.select(fc.id, fc.n_rows, fc.created_at).where(in_range).order_by(fc.id)
    if conn.dialect.name == "postgresql":
        q = q.with_for_update()  # a second compactor waits here, then finds the rows gone
    found = [(int(i), int(n), float(c)) for i, n, c in conn.execute(q)]
    return found == [(c.id, c.n_rows, float(c.created_at)) for c in planned]
