"""The promotion ledger (append-only: the database itself refuses UPDATE, DELETE, TRUNCATE and
REPLACE; each row is hash-chained to the one before, see ``ledger_chain``) and the champion
pointer that promotion compare-and-sets."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.errors import StoreError
from retrainer.store.engine import dialect_insert
from retrainer.store.ledger_chain import GENESIS, ChainVerdict, row_hash, verify_rows
from retrainer.store.records import LedgerEntry, from_epoch, to_epoch
from retrainer.store.schema import model_state, promotion_ledger as t

ACTIONS = (
    "promote", "rollback", "reject", "superseded", "ab_start", "ab_stop", "shadow_start", "shadow_stop",
    # the rollout flow's stage moves (store/rollouts.py); at most 16 characters, the column's width
    "rollout_start", "rollout_queue", "rollout_advance", "rollout_reject", "rollout_abort", "rollout_rollback",
)


def append(
    conn: Connection,
    model_name: str,
    *,
    action: str,
    from_version: str | None,
    to_version: str | None,
    actor: str,
    reason: str,
    run_id: int | None,
    at: datetime | None,
    details: Mapping[str, Any] | None = None,
) -> int:
    if action not in ACTIONS:
        raise StoreError(f"ledger action {action!r} is not one of {', '.join(ACTIONS)}")
    when = to_epoch(at or datetime.now(timezone.utc))
    row = {
        "model_name": model_name,
        "action": action,
        "from_version": from_version,
        "to_version": to_version,
        "actor": actor,
        "reason": reason,
        "run_id": run_id,
        "at": when,
        # Normalised through JSON so the hash covers exactly what a reader will get back.
        "details": None if details is None else json.loads(json.dumps(dict(details))),
    }
    prev = _lock_and_read_head(conn)
    values = {k: v for k, v in row.items() if not (k == "details" and v is None)}  # SQL NULL, not JSON null
    return int(
        conn.execute(
            sa.insert(t).values(**values, prev_hash=prev, row_hash=row_hash(prev, row)).returning(t.c.id)
        ).scalar_one()
    )


def _lock_and_read_head(conn: Connection) -> str:
    """The newest row's hash, read under a lock so two appenders cannot both chain onto it.

    SQLite write transactions already hold the database's write lock (BEGIN IMMEDIATE);
    PostgreSQL needs the table lock (it conflicts with itself, not with readers).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE promotion_ledger IN SHARE ROW EXCLUSIVE MODE")
    head = conn.execute(sa.select(t.c.row_hash).order_by(t.c.id.desc()).limit(1)).scalar_one_or_none()
    return GENESIS if head is None else str(head)


def verify(conn: Connection) -> ChainVerdict:
    """Recompute the whole chain (every model: one chain for the table)."""
    q = sa.select(t).order_by(t.c.id)
    return verify_rows({**r._mapping, "at": r.at} for r in conn.execute(q))


def read(conn: Connection, model_name: str) -> list[LedgerEntry]:
    q = sa.select(t).where(t.c.model_name == model_name).order_by(t.c.id)
    return [
        LedgerEntry(
            id=r.id,
            model_name=r.model_name,
            action=r.action,
            from_version=r.from_version,
            to_version=r.to_version,
            actor=r.actor,
            reason=r.reason,
            run_id=r.run_id,
            at=from_epoch(r.at),  # type: ignore[arg-type]
            details=r.details,
        )
        for r in conn.execute(q)
    ]


def champion(conn: Connection, model_name: str) -> str | None:
    return conn.execute(
        sa.select(model_state.c.champion_version).where(model_state.c.model_name == model_name)
    ).scalar_one_or_none()


def champion_cas(conn: Connection, model_name: str, expected: str | None, new: str) -> bool:
    """Set the champion to ``new`` only if it is ``expected`` now; one statement, so two
    promoters racing cannot both win. False means someone else moved it first."""
    now = time.time()
    moved = conn.execute(
        sa.update(model_state)
        .where(model_state.c.model_name == model_name, model_state.c.champion_version.is_not_distinct_from(expected))
        .values(champion_version=new, updated_at=now)
    ).rowcount
    if moved == 1:
        return True
    if expected is not None:
        return False
    # First champion ever: the row does not exist yet; a racing first insert wins, we lose.
    stmt = (
        dialect_insert(conn, model_state)
        .values(model_name=model_name, champion_version=new, updated_at=now)
        .on_conflict_do_nothing(index_elements=["model_name"])
        .returning(model_state.c.model_name)  # rowcount of an INSERT is not reliable on every driver
    )
    return conn.execute(stmt).first() is not None
