"""Engine creation and transaction helpers shared by every repository module.

SQLite needs care to be a safe multi-process default:

* WAL lets readers run while one writer writes; ``synchronous=NORMAL`` is durable enough in
  WAL mode (a power cut may lose the last commits, never corrupt the file) and much faster.
* A deferred transaction that reads and then writes has to upgrade its lock, and SQLite
  answers SQLITE_BUSY at once (the busy handler is not used, to avoid deadlock). So write
  transactions start with ``BEGIN IMMEDIATE`` (they take the write lock up front and wait in
  the busy handler); read transactions stay deferred so they never block writers.
* pysqlite's own implicit BEGIN is switched off (``isolation_level = None``) so that the
  ``begin`` event below decides which BEGIN is sent.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from retrainer.errors import SchemaError, StoreError

BUSY_TIMEOUT_MS = 30_000
_WRITE = "retrainer_write"  # execution option: this transaction will write


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``; plain ``postgresql://`` means psycopg 3, the driver we depend on."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise StoreError(f"store url {str(url)!r} is not a valid SQLAlchemy URL: {exc}") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(
            f"store url uses {parsed.get_backend_name()!r}; supported: sqlite (default) and postgresql"
        )
    return parsed


def mask_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _clean_json(value: Any) -> Any:
    # PostgreSQL's json rejects NaN/Infinity and numpy scalars are not JSON: fix both once here.
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return _clean_json(value.item())
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy array
        return _clean_json(value.tolist())
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def json_dumps(value: Any) -> str:
    return json.dumps(_clean_json(value), allow_nan=False, separators=(",", ":"))


def create_store_engine(url: str | URL) -> Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        return sa.create_engine(parsed, pool_pre_ping=True, json_serializer=json_dumps)

    memory = parsed.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {
        "json_serializer": json_dumps,
        "connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    }
    if memory:
        # Every new connection to :memory: would be a new, empty database: share one.
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # before WAL: switching may wait
        if not memory:
            # Only takes effect when the file is new: 16 KiB pages hold the feature blobs in
            # fewer overflow pages (measured: ~30% faster ingest than the 4 KiB default).
            cur.execute("PRAGMA page_size = 16384")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA cache_size = -65536")  # 64 MiB: index pages of a big log stay hot
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


_MISSING_TABLE = re.compile(r"no such table|relation .* does not exist|UndefinedTable", re.I)


def _translate(exc: sa.exc.DBAPIError) -> Exception | None:
    if _MISSING_TABLE.search(str(exc.orig)):
        return SchemaError(
            f"the store has no schema or an old one ({exc.orig}): run `retrainer store upgrade`"
        )
    return None


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: BEGIN IMMEDIATE on SQLite, committed on success."""
    try:
        with engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                yield conn
    except sa.exc.DBAPIError as exc:
        better = _translate(exc)
        if better is not None:
            raise better from exc
        raise


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A read-only (deferred) transaction: one consistent snapshot for multi-query reads.

    PostgreSQL reads run at REPEATABLE READ: at the default READ COMMITTED every statement
    has its own snapshot, and a window read (chunk list, then their column blobs) could
    straddle a chunk compaction's commit. A read-only REPEATABLE READ transaction never
    fails with a serialization error. SQLite's deferred BEGIN already reads one snapshot.
    """
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn
    except sa.exc.DBAPIError as exc:
        better = _translate(exc)
        if better is not None:
            raise better from exc
        raise


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """INSERT with ON CONFLICT support for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
