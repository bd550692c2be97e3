"""A/B tests and the unit -> arm assignments observed while they run."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.errors import RolloutError
from retrainer.store.engine import dialect_insert
from retrainer.store.records import ABTest, from_epoch, to_epoch
from retrainer.store.schema import ab_assignments, ab_tests as t


def _test(r: Any) -> ABTest:
    return ABTest(
        id=r.id,
        model_name=r.model_name,
        champion_version=r.champion_version,
        challenger_version=r.challenger_version,
        split=r.split,
        salt=r.salt,
        status=r.status,
        started_at=from_epoch(r.started_at),  # type: ignore[arg-type]
        stopped_at=from_epoch(r.stopped_at),
        stop_reason=r.stop_reason,
        config=r.config,
        result=r.result,
    )


def active(conn: Connection, model_name: str) -> ABTest | None:
    r = conn.execute(sa.select(t).where(t.c.model_name == model_name, t.c.status == "running")).one_or_none()
    return None if r is None else _test(r)


def start(
    conn: Connection,
    model_name: str,
    *,
    champion_version: str,
    challenger_version: str,
    split: float,
    salt: str,
    config: dict[str, Any] | None,
    started_at: datetime | None,
) -> int:
    running = active(conn, model_name)
    if running is not None:
        raise RolloutError(
            f"A/B test {running.id} ({running.champion_version} vs {running.challenger_version}) is already "
            f"running for {model_name!r}: stop it first"
        )
    if not 0 < split < 1:
        raise RolloutError(f"A/B split must be between 0 and 1 (exclusive), got {split}")
    return int(
        conn.execute(
            sa.insert(t)
            .values(
                model_name=model_name,
                champion_version=champion_version,
                challenger_version=challenger_version,
                split=float(split),
                salt=salt,
                status="running",
                started_at=to_epoch(started_at or datetime.now(timezone.utc)),
                config=config or {},
            )
            .returning(t.c.id)
        ).scalar_one()
    )


def stop(conn: Connection, ab_test_id: int, *, reason: str, result: dict[str, Any] | None, stopped_at: datetime | None) -> None:
    done = conn.execute(
        sa.update(t)
        .where(t.c.id == ab_test_id, t.c.status == "running")
        .values(
            status="stopped",
            stop_reason=reason,
            result=result or {},
            stopped_at=to_epoch(stopped_at or datetime.now(timezone.utc)),
        )
    ).rowcount
    if done != 1:
        raise RolloutError(f"A/B test {ab_test_id} is not running (unknown id or already stopped)")


def get(conn: Connection, ab_test_id: int) -> ABTest | None:
    r = conn.execute(sa.select(t).where(t.c.id == ab_test_id)).one_or_none()
    return None if r is None else _test(r)


def history(conn: Connection, model_name: str) -> list[ABTest]:
    return [_test(r) for r in conn.execute(sa.select(t).where(t.c.model_name == model_name).order_by(t.c.id))]


def record_assignments(conn: Connection, ab_test_id: int, pairs: Iterable[tuple[str, str]], assigned_at: datetime | None) -> int:
    """Remember which arm each unit saw; the first assignment of a unit sticks."""
    at = to_epoch(assigned_at or datetime.now(timezone.utc))
    rows = [{"ab_test_id": ab_test_id, "unit_id": u, "arm": a, "assigned_at": at} for u, a in pairs]
    if not rows:
        return 0
    # Only inserted rows come back: the new units, counted without scanning the test's assignments.
    stmt = (dialect_insert(conn, ab_assignments)
            .on_conflict_do_nothing(index_elements=["ab_test_id", "unit_id"])
            .returning(ab_assignments.c.unit_id))
    return len(conn.execute(stmt, rows).all())


def assignment_counts(conn: Connection, ab_test_id: int) -> dict[str, int]:
    q = (
        sa.select(ab_assignments.c.arm, sa.func.count())
        .where(ab_assignments.c.ab_test_id == ab_test_id)
        .group_by(ab_assignments.c.arm)
    )
    return {arm: int(n) for arm, n in conn.execute(q)}


def arm_rows(conn: Connection, test: ABTest, until: datetime, as_of: datetime) -> list[tuple[str, str | None, float, float]]:
    """(arm, unit_id, prediction, label) of the test's predictions in [started_at, until) whose label
    was known at ``as_of``: read by test id and arm, never by model version (a version may serve
    outside the test too)."""
    from retrainer.store.schema import predictions as p

    q = sa.select(p.c.arm, p.c.unit_id, p.c.prediction, p.c.label).where(
        p.c.model_name == test.model_name, p.c.ts >= to_epoch(test.started_at), p.c.ts < to_epoch(until),
        p.c.ab_test_id == test.id, p.c.label_ts <= to_epoch(as_of)).order_by(p.c.ts, p.c.id)
    return [(r.arm, r.unit_id, float(r.prediction), float(r.label)) for r in conn.execute(q)]
