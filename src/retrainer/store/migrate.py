"""Schema versions through Alembic, driven from code (users need no alembic.ini).

Alembic is imported only to migrate: every ``retrainer check`` only asks "is the store at head?",
and importing Alembic costs ~0.1 s of CPU (issue 20). The head is read from the version files'
``revision`` / ``down_revision`` lines and the store's revision with one SELECT; anything a plain
linear history does not explain (a merge, a branch, an unparsable file, two rows) goes to Alembic.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retrainer.errors import SchemaError
from retrainer.store.engine import create_database_file, mask_url, read_tx, sqlite_file, write_tx

# Our own version table, so a database shared with another Alembic user (MLflow's, say)
# does not mix up the two histories.
VERSION_TABLE = "retrainer_alembic_version"
_SCRIPT_LOCATION = str(Path(__file__).parent / "migrations")
# `revision = "0001_initial"` / `down_revision = None` (optionally annotated) at the top level of a version file.
_REVISION_LINE = re.compile(r'^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(None|"[^"\n]*"|\'[^\'\n]*\')\s*(?:#.*)?$', re.M)

if TYPE_CHECKING:
    from alembic.config import Config


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", _SCRIPT_LOCATION)
    cfg.set_main_option("version_table", VERSION_TABLE)
    return cfg


def _linear_head() -> str | None:
    """The one revision no version file names as its ``down_revision``; None unless the files form
    a plain chain that these two lines describe (then Alembic decides)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(Path(_SCRIPT_LOCATION, "versions").glob("*.py")):
        if path.name == "__init__.py":
            continue
        found = dict((k, v) for k, v in _REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found or "down_revision" not in found or found["revision"] == "None":
            return None
        revisions.add(found["revision"][1:-1])
        if found["down_revision"] != "None":
            parents.add(found["down_revision"][1:-1])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


@functools.cache
def head_revision() -> str:
    head = _linear_head()
    if head is None:
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision; None when there is no schema, or no SQLite file yet (nothing is created)."""
    path = sqlite_file(engine.url)
    if path is not None and not path.exists():
        return None
    with read_tx(engine) as conn:
        # What Alembic's MigrationContext.get_current_revision reads, for one row or none.
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
        if len(rows) <= 1:
            return rows[0] if rows else None
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; the one path that creates a missing SQLite file."""
    from alembic import command

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
