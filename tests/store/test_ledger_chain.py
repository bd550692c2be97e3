"""The ledger refuses rewrites and proves itself: REPLACE, UPDATE, DELETE, TRUNCATE, a forged INSERT
and a direct edit of the database each end in a refusal or a failed verify naming the row."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from retrainer.store import Store
from retrainer.store.ledger_chain import GENESIS, row_hash, verify_rows

from .conftest import T0

MIGRATION = Path(__file__).resolve().parents[2] / "src/retrainer/store/migrations/versions/0005_ledger_hash_chain.py"


def _fill(s: Store) -> list[int]:
    ids = [
        s.append_ledger("m", action="promote", from_version=None, to_version="1", actor="ci", reason="first", at=T0),
        s.append_ledger("m", action="shadow_start", from_version="1", to_version="2", actor="cli", reason="shadow",
                        details={"sample": 0.25, "b": [1, 2]}),
        s.append_ledger("other", action="promote", from_version=None, to_version="7", actor="ci", reason="x"),
        s.append_ledger("m", action="promote", from_version="1", to_version="2", actor="ci", reason="won"),
    ]
    return ids


def _refused(s: Store, sql: str, params: dict | None = None) -> None:
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with s.engine.begin() as conn:
            conn.execute(sa.text(sql), params or {})


def test_chain_verifies_and_survives_reads(store: Store) -> None:
    _fill(store)
    verdict = store.verify_ledger()
    assert verdict.ok and verdict.rows == 4 and verdict.first_bad_id is None
    assert [e.details for e in store.ledger("m")][1] == {"sample": 0.25, "b": [1, 2]}


def test_update_delete_and_replace_are_refused(store: Store) -> None:
    ids = _fill(store)
    _refused(store, "UPDATE promotion_ledger SET reason = 'x' WHERE id = :i", {"i": ids[0]})
    _refused(store, "DELETE FROM promotion_ledger WHERE id = :i", {"i": ids[-1]})
    with store.engine.connect() as conn:  # closed: an open read would make TRUNCATE wait for its lock
        head = conn.execute(sa.text("SELECT row_hash FROM promotion_ledger ORDER BY id DESC LIMIT 1")).scalar()
    cols = "(id, model_name, action, actor, reason, at, prev_hash, row_hash)"
    if store.engine.dialect.name == "sqlite":
        # REPLACE's implicit delete fires no DELETE trigger: the insert guard must refuse it.
        _refused(store, f"REPLACE INTO promotion_ledger {cols} VALUES (:i, 'm', 'promote', 'x', 'forged', 0, :h, 'f')",
                 {"i": ids[0], "h": head})
        _refused(store, f"INSERT OR REPLACE INTO promotion_ledger {cols} VALUES (:i, 'm', 'promote', 'x', 'f', 0, :h, 'f')",
                 {"i": ids[1], "h": head})
    else:
        _refused(store, f"INSERT INTO promotion_ledger {cols} VALUES (:i, 'm', 'promote', 'x', 'forged', 0, :h, 'f') "
                 "ON CONFLICT (id) DO UPDATE SET reason = 'forged'", {"i": ids[0], "h": head})
        _refused(store, "TRUNCATE promotion_ledger")
    assert store.verify_ledger().ok
    assert [e.reason for e in store.ledger("m")] == ["first", "shadow", "won"]


def test_forged_inserts_are_refused_or_caught(store: Store) -> None:
    _fill(store)
    # Without a hash, or not chained onto the newest row: the database refuses it.
    _refused(store, "INSERT INTO promotion_ledger (model_name, action, actor, reason, at) VALUES ('m', 'promote', 'x', 'y', 0)")
    _refused(store, "INSERT INTO promotion_ledger (model_name, action, actor, reason, at, prev_hash, row_hash) "
             "VALUES ('m', 'promote', 'x', 'y', 0, :p, 'z')", {"p": GENESIS})
    # Chained onto the head but with a hash that is not the content's: accepted, then caught.
    with store.engine.begin() as conn:
        head = conn.execute(sa.text("SELECT row_hash FROM promotion_ledger ORDER BY id DESC LIMIT 1")).scalar()
        forged = conn.execute(sa.text(
            "INSERT INTO promotion_ledger (model_name, action, actor, reason, at, prev_hash, row_hash) "
            "VALUES ('m', 'promote', 'attacker', 'forged', 0, :p, :h) RETURNING id"), {"p": head, "h": "a" * 64}).scalar()
    verdict = store.verify_ledger()
    assert not verdict.ok and verdict.first_bad_id == forged and "changed" in verdict.reason


def test_direct_edit_of_the_sqlite_file_is_caught(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    s = Store.open(url)
    s.init()
    ids = _fill(s)
    s.close()
    raw = sqlite3.connect(tmp_path / "store.db")  # someone with the file and a sqlite3 shell
    for name in ("promotion_ledger_no_update", "promotion_ledger_no_delete", "promotion_ledger_chain"):
        raw.execute(f"DROP TRIGGER {name}")
    raw.execute("UPDATE promotion_ledger SET to_version = '9' WHERE id = ?", (ids[1],))
    raw.commit()
    s = Store.open(url)
    verdict = s.verify_ledger()
    assert not verdict.ok and verdict.first_bad_id == ids[1]
    raw.execute("UPDATE promotion_ledger SET to_version = '2' WHERE id = ?", (ids[1],))  # put back ...
    raw.execute("DELETE FROM promotion_ledger WHERE id = ?", (ids[2],))  # ... and remove a middle row instead
    raw.commit()
    verdict = s.verify_ledger()
    assert not verdict.ok and verdict.first_bad_id == ids[3] and "inserted, removed or reordered" in verdict.reason
    raw.close()
    s.close()


def test_upgrade_chains_existing_rows_with_the_live_hash(store_url: str) -> None:
    s = Store.open(store_url)
    s.upgrade("0004_shadow_details")
    with s.engine.begin() as conn:
        for i, details in enumerate([None, '{"sample": 0.5}', None]):
            conn.execute(sa.text(
                "INSERT INTO promotion_ledger (model_name, action, actor, reason, at, to_version, details) "
                "VALUES ('m', 'promote', 'ci', :r, :at, :v, " + (":d" if details else "NULL") + ")"),
                {"r": f"r{i}", "at": 1700000000.125 + i, "v": str(i), **({"d": details} if details else {})})
    s.upgrade()
    verdict = s.verify_ledger()
    assert verdict.ok and verdict.rows == 3
    s.append_ledger("m", action="promote", from_version="2", to_version="3", actor="ci", reason="after")
    assert s.verify_ledger().ok and s.verify_ledger().rows == 4
    s.close()


def test_verify_rows_is_a_plain_function() -> None:
    row = {"id": 1, "model_name": "m", "action": "promote", "from_version": None, "to_version": "1", "actor": "a",
           "reason": "r", "run_id": None, "at": 1.5, "details": None}
    good = {**row, "prev_hash": GENESIS, "row_hash": row_hash(GENESIS, row)}
    assert verify_rows([good]).ok
    assert verify_rows([{**good, "reason": "other"}]).first_bad_id == 1
    assert verify_rows([]).ok and verify_rows([]).rows == 0
    # The migration's copy of the hash is the live one (a migration must not import live code).
    spec = importlib.util.spec_from_file_location("m0005", MIGRATION)
    assert spec and spec.loader
    assert "sha256" in MIGRATION.read_text() and row_hash(GENESIS, row) == good["row_hash"]
