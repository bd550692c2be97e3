"""Trigger evaluations: one row per trigger per check, grouped by ``check_id``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.errors import StoreError
from retrainer.store.records import Evaluation, from_epoch, to_epoch
from retrainer.store.schema import trigger_evaluations as t

_REQUIRED = ("check_id", "trigger", "fired", "status", "reason")


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None  # NaN is "no value": NULL on both dialects


def record(conn: Connection, model_name: str, evaluated_at: datetime, rows: Sequence[Mapping[str, Any]]) -> int:
    if not rows:
        return 0
    at = to_epoch(evaluated_at)
    values = []
    for i, row in enumerate(rows):
        missing = [k for k in _REQUIRED if k not in row]
        if missing:
            raise StoreError(f"evaluation row {i} lacks {', '.join(missing)}")
        values.append(
            {
                "check_id": str(row["check_id"]),
                "model_name": model_name,
                "evaluated_at": at,
                "trigger": str(row["trigger"]),
                "fired": bool(row["fired"]),
                "status": str(row["status"]),
                "value": _finite(row.get("value")),
                "threshold": _finite(row.get("threshold")),
                "reason": str(row["reason"]),
                "evidence": dict(row.get("evidence") or {}),
            }
        )
    conn.execute(sa.insert(t), values)
    return len(values)


def read(
    conn: Connection,
    model_name: str,
    since: datetime | None,
    until: datetime | None,
    *,
    role: str | None = None,
    limit: int | None = None,
) -> list[Evaluation]:
    """Evaluations of ``model_name`` in [since, until), oldest first.

    ``role``: only rows whose ``evidence["role"]`` is this (the policy rows of run_check).
    ``limit``: only the newest ``limit`` of those (still returned oldest first): the index on
    (model_name, evaluated_at) is walked backwards and stops there, so reading the last few
    policy outcomes does not grow with the audit table.
    """
    q = sa.select(t).where(t.c.model_name == model_name)
    if since is not None:
        q = q.where(t.c.evaluated_at >= to_epoch(since))
    if until is not None:
        q = q.where(t.c.evaluated_at < to_epoch(until))
    if role is not None:
        q = q.where(t.c.evidence["role"].as_string() == role)
    if limit is not None:
        if limit <= 0:
            return []
        newest = q.order_by(t.c.evaluated_at.desc(), t.c.id.desc()).limit(limit).subquery()
        q = sa.select(newest)
        order = (newest.c.evaluated_at, newest.c.id)
    else:
        order = (t.c.evaluated_at, t.c.id)
    return [
        Evaluation(
            id=r.id,
            check_id=r.check_id,
            model_name=r.model_name,
            evaluated_at=from_epoch(r.evaluated_at),  # type: ignore[arg-type]
            trigger=r.trigger,
            fired=bool(r.fired),
            status=r.status,
            value=r.value,
            threshold=r.threshold,
            reason=r.reason,
            evidence=r.evidence or {},
        )
        for r in conn.execute(q.order_by(*order))
    ]
