"""`retrainer history --verify` names the first bad row of the ledger's hash chain (exit 1), the
monitor flow refuses to act on a broken chain, `--at` in the future is refused, and a promote that
lost the compare-and-set (`superseded`) exits non-zero."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from retrainer.cli import main
from retrainer.errors import LedgerTamperedError

from flow_world import NOW

TRIGGERS = ("promotion_ledger_no_update", "promotion_ledger_no_delete", "promotion_ledger_chain")


def _db_file(world) -> Path:
    url = world.cfg.store.url
    assert url.startswith("sqlite:///")
    return Path(url.removeprefix("sqlite:///"))


def _fill(world) -> list[int]:
    name = world.cfg.model.name
    with world.store() as s:
        return [
            s.append_ledger(name, action="promote", from_version=None, to_version="1", actor="ci", reason="first"),
            s.append_ledger(name, action="promote", from_version="1", to_version="2", actor="ci", reason="second"),
            s.append_ledger(name, action="rollback", from_version="2", to_version="1", actor="ci", reason="third"),
        ]


def _tamper(world, row_id: int) -> None:
    """Someone with the file and a sqlite3 shell: drop the guards, rewrite a row."""
    raw = sqlite3.connect(_db_file(world))
    for trigger in TRIGGERS:
        raw.execute(f"DROP TRIGGER {trigger}")
    raw.execute("UPDATE promotion_ledger SET to_version = '9', reason = 'quietly' WHERE id = ?", (row_id,))
    raw.commit()
    raw.close()


def _verify(capsys, world, *extra: str) -> tuple[int, str]:
    code = main(["history", "--verify", "--config", str(world.config_path), *extra])
    return code, capsys.readouterr().out


def test_history_verify_ok(make_world, capsys):
    world = make_world()
    _fill(world)
    code, out = _verify(capsys, world, "--json")
    data = json.loads(out)
    assert code == 0
    assert (data["ok"], data["rows"], data["first_bad_id"], data["first_bad_row"]) == (True, 3, None, None)
    code, out = _verify(capsys, world)
    assert code == 0 and out.startswith("ok: 3 ledger rows, hash chain intact")


def test_history_verify_names_the_first_bad_row_and_exits_1(make_world, capsys):
    world = make_world()
    ids = _fill(world)
    _tamper(world, ids[1])
    code, out = _verify(capsys, world, "--json")
    data = json.loads(out)
    assert code == 1
    assert data["ok"] is False and data["first_bad_id"] == ids[1] and "changed after it was written" in data["reason"]
    assert data["first_bad_row"]["id"] == ids[1] and data["first_bad_row"]["reason"] == "quietly"
    code, out = _verify(capsys, world)
    assert code == 1 and f"first bad row {ids[1]}" in out and "broken" in out


def test_monitor_refuses_to_act_on_a_broken_chain(make_world, capsys, prefect_harness):
    from retrainer.flows.monitor import monitor

    world = make_world(triggers=[{"type": "schedule", "interval": "7d"}])  # would fire and retrain
    ids = _fill(world)
    _tamper(world, ids[0])
    with pytest.raises(LedgerTamperedError, match=f"ledger row {ids[0]} was changed.*history --verify"):
        monitor(str(world.config_path), now=NOW, run_retrain=True)
    name = world.cfg.model.name
    with world.store() as s:
        assert s.runs(name) == [] and s.evaluations(name) == []  # nothing checked, nothing retrained
        assert s.champion(name) is None
    # The CLI: one line, exit 2 (a failed run, not a verdict).
    code = main(["monitor", "--config", str(world.config_path), "--at", NOW.isoformat(), "--retrain"])
    last = capsys.readouterr().err.strip().splitlines()[-1]  # above it: Prefect's own run log
    assert code == 2 and last.startswith("error: ") and f"ledger row {ids[0]}" in last


@pytest.mark.parametrize("command", ["monitor", "retrain"])
def test_at_in_the_future_is_refused(make_world, capsys, command):
    world = make_world()
    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    code = main([command, "--config", str(world.config_path), "--at", future, "--force"][: 5 if command == "monitor" else 6])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "is in the future" in err
    with world.store() as s:
        assert s.runs(world.cfg.model.name) == [] and s.evaluations(world.cfg.model.name) == []


@pytest.mark.slow  # two real retrains to have two registered versions
def test_a_superseded_promote_exits_non_zero(make_world, capsys, monkeypatch, prefect_harness):
    import retrainer.deployments.rollout.promotion as promotion

    world = make_world()
    cfg = str(world.config_path)
    for _ in range(2):
        assert main(["retrain", "--config", cfg, "--force", "--at", NOW.isoformat(), "--json"]) == 0
    capsys.readouterr()
    name = world.cfg.model.name
    real = promotion.promote

    def racing(registry, store, **kw):
        # Another operator rolls back between this CLI's read of the champion and its swap.
        store.swap_champion(name, expected="2", new="1", action="rollback", actor="other", reason="race")
        return real(registry, store, **kw)

    monkeypatch.setattr(promotion, "promote", racing)
    code = main(["promote", "2", "--config", cfg, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["status"] == "superseded" and out["champion"] == "1"
    with world.store() as s:
        assert [e.action for e in s.ledger(name)][-2:] == ["rollback", "superseded"]
