"""Reference profiles: what drift of a registered model version is measured against."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.store.engine import dialect_insert
from retrainer.store.schema import reference_profiles as t


def save(conn: Connection, model_name: str, version: str, profile: dict[str, Any]) -> None:
    stmt = dialect_insert(conn, t).values(model_name=model_name, version=version, profile=profile, created_at=time.time())
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["model_name", "version"],
            set_={"profile": stmt.excluded.profile, "created_at": stmt.excluded.created_at},
        )
    )


def load(conn: Connection, model_name: str, version: str) -> dict[str, Any] | None:
    return conn.execute(
        sa.select(t.c.profile).where(t.c.model_name == model_name, t.c.version == version)
    ).scalar_one_or_none()
