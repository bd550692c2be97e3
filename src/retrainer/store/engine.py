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
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

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


def sqlite_file(url: URL) -> Path | None:
    """The database file of a file-backed SQLite URL; None for PostgreSQL and ``:memory:``."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def create_database_file(url: str | URL) -> None:
    """Create the empty SQLite file of ``url`` (only ``store init`` does this); no-op otherwise."""
    path = sqlite_file(normalize_url(url))
    if path is None or path.exists():
        return
    if not path.parent.is_dir():
        raise StoreError(f"store.url points into {str(path.parent)!r}, which does not exist: create the folder first")
    sqlite3.connect(path).close()


def _missing_store(url: URL, path: Path) -> StoreError:
    return StoreError(
        f"the store file {str(path)!r} (store.url {mask_url(url)}) does not exist: "
        "run `retrainer store init`, or fix store.url"
    )


def _unreachable(url: URL, exc: BaseException) -> StoreError:
    reason = " ".join(str(exc).split()) or type(exc).__name__
    return StoreError(
        f"cannot connect to the store at {mask_url(url)} (store.url): {reason}; "
        "start the database server or fix store.url"
    )


def create_store_engine(url: str | URL) -> Engine:
    """An engine on ``url`` that never creates a database: opening a missing SQLite file is a
    StoreError naming the file and ``retrainer store init`` (see create_database_file)."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = sa.create_engine(parsed, pool_pre_ping=True, json_serializer=json_dumps)

        @event.listens_for(engine, "do_connect")
        def _pg_connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            try:
                return dialect.loaded_dbapi.connect(*cargs, **cparams)
            except dialect.loaded_dbapi.OperationalError as exc:
                raise _unreachable(parsed, exc) from None

        return engine

    memory = parsed.database in (None, "", ":memory:")
    kwargs: dict[str, Any] = {
        "json_serializer": json_dumps,
        "connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    }
    if memory:
        # Every new connection to :memory: would be a new, empty database: share one.
        kwargs["poolclass"] = StaticPool
    engine = sa.create_engine(parsed, **kwargs)
    path = sqlite_file(parsed)

    if path is not None:

        @event.listens_for(engine, "do_connect")
        def _open_existing(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
            # mode=rw: SQLite refuses to create the file, so a failed command leaves nothing behind.
            if not path.exists():
                raise _missing_store(parsed, path)
            uri = f"file:{pathname2url(str(path.resolve()))}?mode=rw"
            try:
                return sqlite3.connect(uri, uri=True, **{k: v for k, v in cparams.items() if k != "uri"})
            except sqlite3.OperationalError as exc:
                if not path.exists():
                    raise _missing_store(parsed, path) from None
                raise _unreachable(parsed, exc) from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see module docstring)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")  # before WAL: switching may wait
        if not memory:
            try:
                cur.execute("PRAGMA schema_version")  # reads the header: fails on a non-database file
            except sqlite3.DatabaseError as exc:
                raise StoreError(
                    f"the store file {str(path)!r} (store.url {mask_url(parsed)}) is not an SQLite "
                    f"database ({exc}): fix store.url, or move the file away and run `retrainer store init`"
                ) from None
            # Page size stays SQLite's default (4 KiB): a small group-commit transaction writes its
            # few dirty pages whole to the WAL, and at 16 KiB it cost ~1.5x the time while bulk
            # ingest measured the same (docs/store-layout.md, "SQLite settings").
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.execute("PRAGMA cache_size = -65536")  # 64 MiB: index pages of a big log stay hot
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # On the driver connection: exec_driver_sql's bookkeeping cost more than the BEGIN itself.
        conn.connection.dbapi_connection.execute(  # type: ignore[union-attr]
            "BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")

    return engine


_MISSING_TABLE = re.compile(r"no such table|relation .* does not exist|UndefinedTable", re.I)


def _translate(exc: sa.exc.DBAPIError) -> Exception | None:
    if _MISSING_TABLE.search(str(exc.orig)):
        return SchemaError(
            f"the store has no schema or an old one ({exc.orig}): "
            "run `retrainer store init` (new store) or `retrainer store upgrade` (older one)"
        )
    return None


@contextmanager
def _schema_errors_named() -> Iterator[None]:
    """A missing table becomes a SchemaError that says what to run; other errors pass unchanged."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        better = _translate(exc)
        if better is not None:
            raise better from exc
        raise


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: BEGIN IMMEDIATE on SQLite, committed on success."""
    with _schema_errors_named(), engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A read-only (deferred) transaction: one consistent snapshot for multi-query reads.

    PostgreSQL reads run at REPEATABLE READ: at the default READ COMMITTED every statement
    has its own snapshot, and a window read (chunk list, then their column blobs) could
    straddle a chunk compaction's commit. A read-only REPEATABLE READ transaction never
    fails with a serialization error. SQLite's deferred BEGIN already reads one snapshot.
    """
    with _schema_errors_named(), engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


@lru_cache(maxsize=64)
def _paramstyle(sql: str, dialect: str) -> str:
    return sql.replace("?", "%s") if dialect == "postgresql" else sql


def driver_execute(conn: Connection, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Run fixed SQL text (``?`` placeholders; no name in it comes from input) on the driver's own
    cursor, inside the transaction ``conn`` began; returns the rows it produced.

    For the statements of the serving path's small group-commit transactions: SQLAlchemy's
    per-statement cost there was several times the database's own (docs/serving.md)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_paramstyle(sql, conn.dialect.name), params)
        return cursor.fetchall() if cursor.description else []
    finally:
        cursor.close()


def dialect_insert(conn: Connection, table: sa.Table) -> Any:
    """INSERT with ON CONFLICT support for the connection's dialect."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)
