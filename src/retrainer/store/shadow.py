"""Shadow comparisons: the champion's and the shadow model's answer to the same request."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.errors import ValidationError
from retrainer.store.records import ShadowRecord, ShadowWindow, from_epoch, to_epoch
from retrainer.store.schema import labels as labels_table
from retrainer.store.schema import shadow_comparisons as t


def _opt(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def record(conn: Connection, rows: Sequence[ShadowRecord]) -> int:
    if not rows:
        return 0
    bad = [f"row {i}: expected a ShadowRecord, got {type(r).__name__}" for i, r in enumerate(rows) if not isinstance(r, ShadowRecord)]
    bad += [f"row {i} ({r.request_id}): no shadow prediction and no error" for i, r in enumerate(rows)
            if isinstance(r, ShadowRecord) and r.shadow_prediction is None and r.error is None]
    if bad:
        raise ValidationError("shadow batch rejected, nothing was written:\n  - " + "\n  - ".join(bad[:20]), bad)
    conn.execute(
        sa.insert(t),
        [
            {
                "model_name": r.model_name,
                "request_id": r.request_id,
                "champion_version": r.champion_version,
                "shadow_version": r.shadow_version,
                "champion_prediction": float(r.champion_prediction),
                "shadow_prediction": None if r.shadow_prediction is None else float(r.shadow_prediction),
                "champion_score": _opt(r.champion_score),
                "shadow_score": _opt(r.shadow_score),
                "latency_ms": _opt(r.latency_ms),
                "champion_latency_ms": _opt(r.champion_latency_ms),
                "error": None if r.error is None else str(r.error),
                "ts": to_epoch(r.ts),
            }
            for r in rows
        ],
    )
    return len(rows)


def read(
    conn: Connection, model_name: str, since: datetime | None, until: datetime | None, shadow_version: str | None
) -> list[ShadowRecord]:
    q = sa.select(t).where(t.c.model_name == model_name)
    if since is not None:
        q = q.where(t.c.ts >= to_epoch(since))
    if until is not None:
        q = q.where(t.c.ts < to_epoch(until))
    if shadow_version is not None:
        q = q.where(t.c.shadow_version == shadow_version)
    return [
        ShadowRecord(
            model_name=r.model_name,
            request_id=r.request_id,
            champion_version=r.champion_version,
            shadow_version=r.shadow_version,
            champion_prediction=r.champion_prediction,
            shadow_prediction=r.shadow_prediction,
            ts=from_epoch(r.ts),  # type: ignore[arg-type]
            champion_score=r.champion_score,
            shadow_score=r.shadow_score,
            latency_ms=r.latency_ms,
            champion_latency_ms=r.champion_latency_ms,
            error=r.error,
            id=r.id,
        )
        for r in conn.execute(q.order_by(t.c.ts, t.c.id))
    ]


# NULL travels as -inf (no stored figure is infinite), so the rows go straight into float64.
_NULL = float("-inf")
_WINDOW_COLUMNS = ("ts", "champion_prediction", "shadow_prediction", "champion_score", "shadow_score", "latency_ms",
                   "champion_latency_ms", "failed", "label", "label_ts")


def window(
    conn: Connection, model_name: str, shadow_version: str, since: datetime, until: datetime, as_of: datetime,
    champion_version: str | None = None,
) -> ShadowWindow:
    """``shadow_version``'s comparisons in [since, until) (optionally against one champion version)
    with each request's label known at ``as_of``, as columns: one query (a left join on the labels'
    primary key) and no per-row objects, so a look at a shadow of millions of requests stays cheap."""
    lab = labels_table.alias("l")
    known = sa.and_(lab.c.request_id == t.c.request_id, lab.c.ts <= to_epoch(as_of))

    def nullable(c: sa.ColumnElement) -> sa.ColumnElement:  # type: ignore[type-arg]
        return sa.func.coalesce(c, sa.literal(_NULL, sa.Double))

    cols = [t.c.ts, t.c.champion_prediction, nullable(t.c.shadow_prediction), nullable(t.c.champion_score),
            nullable(t.c.shadow_score), nullable(t.c.latency_ms), nullable(t.c.champion_latency_ms),
            sa.case((t.c.error.is_(None), 0.0), else_=1.0), nullable(lab.c.label), nullable(lab.c.ts)]
    q = sa.select(*cols).select_from(t.outerjoin(lab, known)).where(
        t.c.model_name == model_name, t.c.shadow_version == shadow_version, t.c.ts >= to_epoch(since),
        t.c.ts < to_epoch(until))
    if champion_version is not None:
        q = q.where(t.c.champion_version == champion_version)
    q = q.order_by(t.c.ts, t.c.id)
    dtype = np.dtype([(c, np.float64) for c in _WINDOW_COLUMNS])
    m = np.fromiter((tuple(float(v) for v in row) for row in conn.execute(q)), dtype=dtype, count=-1)
    m = m.view(np.float64).reshape(-1, len(_WINDOW_COLUMNS)) if m.size else np.zeros((0, len(_WINDOW_COLUMNS)))
    m[m == _NULL] = np.nan
    return ShadowWindow(*(m[:, i].copy() for i in range(7)), failed=m[:, 7] == 1.0, label=m[:, 8].copy(),
                        label_ts=m[:, 9].copy())
