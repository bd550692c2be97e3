"""Late labels, joined to predictions by request id.

A label is kept even when its request id is unknown (the prediction may arrive later, or be
lost upstream, which is worth counting); re-sending a label keeps the one with the latest
label time, so an out-of-order retry cannot overwrite a correction.
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.store.engine import dialect_insert
from retrainer.store.records import LabelWriteResult
from retrainer.store.schema import labels, predictions
from retrainer.store.validation import LabelBatch

_IN_CHUNK = 5_000  # bound parameters per IN (...), under SQLite's 32,766 limit


def write_labels(conn: Connection, batch: LabelBatch) -> LabelWriteResult:
    if not batch.request_id:
        return LabelWriteResult(written=0, unknown_request_ids=0)
    # One row per request id (the latest label time wins, later position breaks ties):
    # PostgreSQL refuses an upsert that touches the same row twice in one statement.
    latest: dict[str, tuple[float, float]] = {}
    for rid, label, ts in zip(batch.request_id, batch.label.tolist(), batch.ts.tolist(), strict=True):
        if rid not in latest or ts >= latest[rid][1]:
            latest[rid] = (label, ts)
    now = time.time()
    rows = [{"request_id": rid, "label": lab, "ts": ts, "received_at": now} for rid, (lab, ts) in latest.items()]
    stmt = dialect_insert(conn, labels)
    stmt = stmt.on_conflict_do_update(
        index_elements=["request_id"],
        set_={"label": stmt.excluded.label, "ts": stmt.excluded.ts, "received_at": stmt.excluded.received_at},
        where=labels.c.ts <= stmt.excluded.ts,
    )
    conn.execute(stmt, rows)

    ids = list(latest)
    known = 0
    for i in range(0, len(ids), _IN_CHUNK):
        part = ids[i : i + _IN_CHUNK]
        known += conn.execute(
            sa.select(sa.func.count()).select_from(predictions).where(predictions.c.request_id.in_(part))
        ).scalar_one()
    return LabelWriteResult(written=len(rows), unknown_request_ids=len(ids) - int(known))


def unmatched_labels(conn: Connection) -> int:
    """Labels whose request id matches no stored prediction (right now)."""
    matched = sa.exists().where(predictions.c.request_id == labels.c.request_id)
    return int(conn.execute(sa.select(sa.func.count()).select_from(labels).where(~matched)).scalar_one())
