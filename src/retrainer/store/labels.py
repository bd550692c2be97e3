"""Late labels, joined to predictions by request id.

A label is kept even when its request id is unknown (the prediction may arrive later, or be
lost upstream, which is worth counting); re-sending a label keeps the one with the latest
label time, so an out-of-order retry cannot overwrite a correction.

``labels`` is the source of truth; the latest label and its time are also copied onto the
prediction row (``predictions.label`` / ``label_ts``, revision 0003) so that reading a
labelled window is one index range scan, not a join on text keys. :func:`sync_predictions`
keeps the copy in step from both sides: after a label write, and after a prediction write
(a label may arrive before its prediction).
"""

from __future__ import annotations

import time
from functools import lru_cache
from datetime import datetime, timedelta

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.store.engine import dialect_insert, driver_execute
from retrainer.store.records import LabelWriteResult, to_epoch
from retrainer.store.schema import labels, predictions
from retrainer.store.validation import LabelBatch
from retrainer.windows import LabelDelay

_IN_CHUNK = 5_000  # bound parameters per IN (...), under SQLite's 32,766 limit


def write_labels(conn: Connection, batch: LabelBatch) -> LabelWriteResult:
    """Upsert the batch; a label time before its stored prediction's time is raised to it."""
    if not batch.request_id:
        return LabelWriteResult(written=0)
    # One row per request id (the latest label time wins, later position breaks ties):
    # PostgreSQL refuses an upsert that touches the same row twice in one statement.
    latest: dict[str, tuple[float, float]] = {}
    for rid, label, ts in zip(batch.request_id, batch.label.tolist(), batch.ts.tolist(), strict=True):
        if rid not in latest or ts >= latest[rid][1]:
            latest[rid] = (label, ts)
    lock_label_matching(conn)
    ids = list(latest)
    made: dict[str, float] = {}  # prediction time of the ids already stored
    for i in range(0, len(ids), _IN_CHUNK):
        part = ids[i : i + _IN_CHUNK]
        made.update((rid, ts) for rid, ts in conn.execute(
            sa.select(predictions.c.request_id, predictions.c.ts).where(predictions.c.request_id.in_(part))))
    clamped = [rid for rid in ids if rid in made and latest[rid][1] < made[rid]]
    for rid in clamped:
        latest[rid] = (latest[rid][0], made[rid])
    now = time.time()
    rows = [{"request_id": rid, "label": lab, "ts": ts, "received_at": now} for rid, (lab, ts) in latest.items()]
    stmt = dialect_insert(conn, labels)
    stmt = stmt.on_conflict_do_update(
        index_elements=["request_id"],
        set_={"label": stmt.excluded.label, "ts": stmt.excluded.ts, "received_at": stmt.excluded.received_at},
        where=labels.c.ts <= stmt.excluded.ts,
    )
    conn.execute(stmt, rows)
    if made:
        sync_predictions(conn, ids)
    return LabelWriteResult(written=len(rows), unknown_request_ids=[rid for rid in ids if rid not in made],
                            clamped_request_ids=clamped)


# PostgreSQL only (SQLite writers are serialised by BEGIN IMMEDIATE). Without it a prediction
# insert and a label write for the same request id in two concurrent transactions would each
# miss the other's uncommitted row, and the prediction would stay unlabelled. Label writers
# take it exclusively, prediction writers shared: ingest batches still run side by side.
_LABEL_MATCH_LOCK = 727275


def lock_label_matching(conn: Connection, *, shared: bool = False) -> None:
    if conn.dialect.name == "postgresql":
        fn = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        conn.exec_driver_sql(f"SELECT {fn}({_LABEL_MATCH_LOCK})")


@lru_cache(maxsize=64)
def _labelled_ids_sql(n: int) -> str:
    """Which of n request ids have a label: run after every prediction write (driver_execute)."""
    return f"SELECT request_id FROM labels WHERE request_id IN ({', '.join(['?'] * n)})"


# Built once (expanding IN parameter): compiled once, then reused from SQLAlchemy's cache.
# A label stored before its prediction arrived may carry an earlier time: the copy takes the
# prediction's time then (a label is never known before its prediction).
_LABEL_TS = sa.case((labels.c.ts < predictions.c.ts, predictions.c.ts), else_=labels.c.ts)
_SYNC = (
    sa.update(predictions)
    .values(label=labels.c.label, label_ts=_LABEL_TS)
    .where(
        predictions.c.request_id == labels.c.request_id,
        labels.c.request_id.in_(sa.bindparam("ids", expanding=True)),
        sa.or_(predictions.c.label_ts.is_distinct_from(_LABEL_TS), predictions.c.label.is_distinct_from(labels.c.label)),
    )
)


def sync_predictions(conn: Connection, request_ids: list[str]) -> None:
    """Copy the stored label (and its time) of these request ids onto their prediction rows.

    Copies from ``labels`` rather than from the batch, so the prediction row always mirrors
    the source of truth (latest label time wins there). Rows already in step are not written.
    After a prediction write almost no id has a label yet: one primary-key lookup finds the
    few that do, and the UPDATE runs only for them (none: no UPDATE at all).
    """
    for i in range(0, len(request_ids), _IN_CHUNK):
        part = request_ids[i : i + _IN_CHUNK]
        labelled = [rid for (rid,) in driver_execute(conn, _labelled_ids_sql(len(part)), part)]
        if labelled:
            conn.execute(_SYNC, {"ids": labelled})


def unmatched_labels(conn: Connection) -> int:
    """Labels whose request id matches no stored prediction (right now)."""
    matched = sa.exists().where(predictions.c.request_id == labels.c.request_id)
    return int(conn.execute(sa.select(sa.func.count()).select_from(labels).where(~matched)).scalar_one())


# The delay quantiles come from at most this many of the newest arrivals: a bounded read
# (~50 ms) however busy the model, and plenty for a p95 (its standard error is ~0.1 % of n).
DELAY_SAMPLE = 50_000


def label_delay(
    conn: Connection, model_name: str, as_of: datetime, lookback: timedelta, *, limit: int = DELAY_SAMPLE
) -> LabelDelay:
    """The model's label delay at ``as_of``: (label time - prediction time) of the labels that
    arrived in ``(as_of - lookback, as_of]`` (the newest ``limit``), and the share of the
    predictions made in ``[as_of - lookback, as_of)`` labelled by ``as_of``.

    Selected by arrival, not by prediction time, so recent predictions still waiting for a slow
    label do not bias the delay down (see :class:`~retrainer.windows.LabelDelay`). One range
    scan of ``ix_predictions_label_arrival`` (revision 0006) plus one counting pass over the window index.
    """
    p = predictions
    hi = to_epoch(as_of)
    lo = hi - lookback.total_seconds()
    rows = conn.execute(
        sa.select(p.c.label_ts - p.c.ts)
        .where(p.c.model_name == model_name, p.c.label_ts > lo, p.c.label_ts <= hi)
        .order_by(p.c.label_ts.desc())
        .limit(limit)
    ).scalars().all()
    # Both counts in one pass over the window index (label_ts is in it: no table lookups).
    labelled = sa.func.coalesce(sa.func.sum(sa.case((p.c.label_ts <= hi, 1), else_=0)), 0)
    n_made, n_labelled = conn.execute(
        sa.select(sa.func.count(), labelled).where(p.c.model_name == model_name, p.c.ts >= lo, p.c.ts < hi)
    ).one()
    return LabelDelay.from_delays(np.asarray(rows, dtype=np.float64), as_of=as_of, lookback=lookback,
                                  n_predictions=int(n_made), n_labelled=int(n_labelled))
