"""Shadow comparisons: the champion's and the shadow model's answer to the same request."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.errors import ValidationError
from retrainer.store.records import ShadowRecord, from_epoch, to_epoch
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
