"""Schema versions through Alembic, driven from code (users need no alembic.ini)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from retrainer.errors import SchemaError
from retrainer.store.engine import create_database_file, mask_url, read_tx, sqlite_file, write_tx

# Our own version table, so a database shared with another Alembic user (MLflow's, say)
# does not mix up the two histories.
VERSION_TABLE = "retrainer_alembic_version"
_SCRIPT_LOCATION = str(Path(__file__).parent / "migrations")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", _SCRIPT_LOCATION)
    cfg.set_main_option("version_table", VERSION_TABLE)
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision; None when there is no schema, or no SQLite file yet (nothing is created)."""
    path = sqlite_file(engine.url)
    if path is not None and not path.exists():
        return None
    with read_tx(engine) as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return ctx.get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; the one path that creates a missing SQLite file."""
    create_database_file(engine.url)
    cfg = alembic_config()
    with write_tx(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Two processes initialising one database at once: serialise them (released at commit).
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def check(engine: Engine) -> None:
    have, want = current_revision(engine), head_revision()
    if have == want:
        return
    where = mask_url(engine.url)
    if have is None:
        raise SchemaError(f"the store at {where} has no retrainer schema (or does not exist): run `retrainer store init`")
    raise SchemaError(
        f"the store at {where} is at schema revision {have!r}, this code needs {want!r}: "
        "run `retrainer store upgrade`"
    )
