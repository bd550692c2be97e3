"""`retrainer demo` reuses only its own directory and replaces only what it made, the store's
prediction spool included (a crashed run's segments must not reach the next run's fresh store)."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrainer.demo.runner import MARKER, prepare_workdir
from retrainer.errors import ConfigError


def test_a_previous_demos_files_and_spool_are_replaced_and_nothing_else(tmp_path: Path) -> None:
    prepare_workdir(tmp_path)
    spool = tmp_path / "retrainer.db-spool"
    spool.mkdir()
    (spool / "demo.123.abc.spool").write_bytes(b"left by a crash")
    (tmp_path / "retrainer.db").write_text("old store")
    (tmp_path / "notes.txt").write_text("the user's")
    prepare_workdir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER, "notes.txt"]


def test_a_directory_the_demo_did_not_make_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("x")
    with pytest.raises(ConfigError, match="was not made by `retrainer demo`"):
        prepare_workdir(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]
