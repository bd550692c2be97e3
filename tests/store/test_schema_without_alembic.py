"""The schema check every ``retrainer check`` makes reads what Alembic would, without importing it.

Alembic costs ~0.1 s of CPU to import (issue 20); only migrating needs it. Head and current
revision are compared with Alembic's own answers at each step of the history.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from retrainer.errors import SchemaError
from retrainer.store import Store, migrate


def _alembic_current(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": migrate.VERSION_TABLE}).get_current_revision()


def test_head_is_alembics() -> None:
    assert migrate._linear_head() == ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    assert Store.head_revision() == migrate._linear_head()


def test_current_revision_is_alembics_along_the_history(store_url: str) -> None:
    store = Store.open(store_url)
    assert store.current_revision() is None
    history = [r.revision for r in ScriptDirectory.from_config(migrate.alembic_config()).walk_revisions()][::-1]
    for revision in history:
        store.upgrade(revision)
        assert store.current_revision() == _alembic_current(store) == revision
        if revision != Store.head_revision():
            with pytest.raises(SchemaError, match=f"at schema revision '{revision}'.*retrainer store upgrade"):
                store.check_schema()
    store.check_schema()
    store.close()


@pytest.mark.parametrize("files", [
    {"a.py": 'revision = "a"\ndown_revision = None\n', "b.py": 'revision = "b"\ndown_revision = "a"\n',
     "c.py": 'revision = "c"\ndown_revision = "a"\n'},  # a branch: two heads
    {"a.py": 'revision = "a"\ndown_revision = None\n', "m.py": 'revision = "m"\ndown_revision = ("a", "b")\n'},  # a merge
    {"a.py": 'revision = "a"\n'},  # no down_revision line
])
def test_anything_but_a_plain_chain_is_left_to_alembic(tmp_path: Path, monkeypatch, files: dict[str, str]) -> None:
    (tmp_path / "versions").mkdir()
    for name, text in files.items():
        (tmp_path / "versions" / name).write_text(text)
    monkeypatch.setattr(migrate, "_SCRIPT_LOCATION", str(tmp_path))
    assert migrate._linear_head() is None


def test_a_plain_chain_with_annotations_is_read(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "versions").mkdir()
    (tmp_path / "versions" / "one.py").write_text('revision: str = "one"\ndown_revision: str | None = None\n')
    (tmp_path / "versions" / "two.py").write_text("revision = 'two'  # next\ndown_revision = 'one'\n")
    monkeypatch.setattr(migrate, "_SCRIPT_LOCATION", str(tmp_path))
    assert migrate._linear_head() == "two"
