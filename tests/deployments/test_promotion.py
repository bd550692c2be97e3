"""Compare-and-set promotion against the real SQLite store and a real MLflow registry (temp dirs)."""

from __future__ import annotations

from datetime import datetime, timezone

import uuid

import pytest
from thread_race import race

from retrainer.deployments.rollout.promotion import (
    champion_history,
    promote,
    reject,
    resolve_champion,
    rollback,
    sync_champion_alias,
)
from retrainer.errors import RegistryError
from retrainer.registry import CHALLENGER, CHAMPION, Registry
from retrainer.store import Store


@pytest.fixture(scope="module")
def mlflow_dir(new_mlflow_dir):
    return new_mlflow_dir("mlflow-promotion")


@pytest.fixture
def registry(mlflow_dir, tiny_registry):
    name = f"p-{uuid.uuid4().hex[:8]}"
    return Registry(tiny_registry(mlflow_dir, name, 4), model_name=name)  # versions 1..4, all the same small model


@pytest.fixture
def store_url(tmp_path):
    url = f"sqlite:///{tmp_path / 'retrainer.db'}"
    with Store.open(url) as s:
        s.init()
    return url


@pytest.fixture
def store(store_url):
    with Store.open(store_url) as s:
        yield s


def actions(store, registry):
    return [(r.action, r.from_version, r.to_version) for r in store.ledger(registry.model_name)]


def test_first_promotion_sets_store_alias_and_ledger(registry, store):
    result = promote(registry, store, version="1", expected_champion=None, actor="alice", reason="first model")
    assert (result.status, result.from_version, result.to_version, result.champion) == ("promoted", None, "1", "1")
    assert store.champion(registry.model_name) == "1"
    assert registry.alias_version(CHAMPION) == "1"
    rows = store.ledger(registry.model_name)
    assert [(r.action, r.from_version, r.to_version, r.actor, r.reason) for r in rows] == [
        ("promote", None, "1", "alice", "first model")
    ]
    assert rows[0].id == result.ledger_id


def test_stale_expectation_is_superseded_not_overwritten(registry, store):
    promote(registry, store, version="1", expected_champion=None, actor="a", reason="r")
    promote(registry, store, version="2", expected_champion="1", actor="a", reason="r")
    late = promote(registry, store, version="3", expected_champion="1", actor="b", reason="late")
    assert late.status == "superseded" and late.champion == "2"
    assert store.champion(registry.model_name) == "2" and registry.alias_version(CHAMPION) == "2"
    assert actions(store, registry)[-1] == ("superseded", "1", "3")
    assert "expected '1'" in store.ledger(registry.model_name)[-1].reason


@pytest.mark.parametrize("attempt", range(3))
def test_cas_race_has_exactly_one_winner(registry, store_url, attempt):
    with Store.open(store_url) as setup:
        promote(registry, setup, version="1", expected_champion=None, actor="setup", reason="base")
    contenders = ("2", "3")
    # Each thread has its own Store (engine), as two worker processes would.
    by_index, errors = race(2, lambda own, i: promote(
        registry, own, version=contenders[i], expected_champion="1", actor=f"worker-{contenders[i]}", reason="race",
    ), each=lambda: Store.open(store_url))
    results = {contenders[i]: r for i, r in by_index.items()}
    assert not errors, errors
    statuses = sorted(r.status for r in results.values())
    assert statuses == ["promoted", "superseded"]
    winner = next(v for v, r in results.items() if r.status == "promoted")
    loser = next(v for v, r in results.items() if r.status == "superseded")
    with Store.open(store_url) as check:
        rows = actions(check, registry)
        assert store_champion(check, registry) == winner
    assert rows.count(("promote", "1", winner)) == 1
    assert [r for r in rows if r[0] == "promote"] == [("promote", None, "1"), ("promote", "1", winner)]
    assert [r for r in rows if r[0] == "superseded"] == [("superseded", "1", loser)]
    assert registry.alias_version(CHAMPION) == winner


def store_champion(store, registry):
    return store.champion(registry.model_name)


def test_rollback_restores_previous_champion_in_one_step(registry, store):
    promote(registry, store, version="1", expected_champion=None, actor="a", reason="r")
    promote(registry, store, version="2", expected_champion="1", actor="a", reason="r")
    promote(registry, store, version="3", expected_champion="2", actor="a", reason="r")
    back = rollback(registry, store, actor="oncall", reason="bad latency")
    assert (back.status, back.from_version, back.to_version) == ("rolled_back", "3", "2")
    assert store.champion(registry.model_name) == "2" and registry.alias_version(CHAMPION) == "2"
    last = store.ledger(registry.model_name)[-1]
    assert (last.action, last.from_version, last.to_version, last.actor, last.reason) == (
        "rollback", "3", "2", "oncall", "bad latency"
    )
    # A second rollback goes one further back, not forward to 3.
    again = rollback(registry, store, actor="oncall", reason="still bad")
    assert again.to_version == "1" and store.champion(registry.model_name) == "1"
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        rollback(registry, store, actor="oncall", reason="no more")


def test_rollback_without_champion_is_an_error(registry, store):
    with pytest.raises(RegistryError, match="no champion"):
        rollback(registry, store, actor="a", reason="r")


def test_alias_is_repaired_when_the_store_is_ahead(registry, store):
    promote(registry, store, version="1", expected_champion=None, actor="a", reason="r")
    # Simulate a crash after the CAS (and its ledger row) but before the alias moved.
    assert store.champion_cas(registry.model_name, "1", "2")
    assert registry.alias_version(CHAMPION) == "1"
    assert sync_champion_alias(registry, store) == "2"
    assert registry.alias_version(CHAMPION) == "2"
    # And any promotion call repairs it first.
    registry.set_alias(CHAMPION, "1")
    result = promote(registry, store, version="3", expected_champion="1", actor="a", reason="stale")
    assert result.status == "superseded" and registry.alias_version(CHAMPION) == "2"


def test_promote_unknown_version_changes_nothing(registry, store):
    with pytest.raises(RegistryError, match="no version 99"):
        promote(registry, store, version="99", expected_champion=None, actor="a", reason="r")
    assert store.champion(registry.model_name) is None and store.ledger(registry.model_name) == []


def test_promoting_the_challenger_unstages_it_and_reject_writes_a_row(registry, store):
    registry.set_alias(CHALLENGER, "1")
    promote(registry, store, version="1", expected_champion=None, actor="a", reason="r")
    assert registry.alias_version(CHALLENGER) is None
    registry.set_alias(CHALLENGER, "2")
    ledger_id = reject(registry, store, version="2", actor="gate", reason="f1 below 0.95x")
    last = store.ledger(registry.model_name)[-1]
    assert (last.id, last.action, last.from_version, last.to_version) == (ledger_id, "reject", "1", "2")
    assert registry.alias_version(CHALLENGER) is None
    assert store.champion(registry.model_name) == "1"


def test_champion_history_replays_promote_and_rollback():
    class Row:
        def __init__(self, action, f, t):
            self.action, self.from_version, self.to_version = action, f, t

    rows = [Row("promote", None, "1"), Row("promote", "1", "2"), Row("reject", "2", "5"),
            Row("superseded", "1", "4"), Row("promote", "2", "3"), Row("rollback", "3", "2")]
    assert champion_history(rows) == ["1", "2"]


def test_retry_after_the_alias_move_failed_finishes_the_promotion(registry, store, monkeypatch):
    promote(registry, store, version="1", expected_champion=None, actor="a", reason="r")
    real_set_alias = type(registry).set_alias
    calls = {"n": 0}

    def flaky_set_alias(self, alias, version):
        real_set_alias(self, alias, version)
        calls["n"] += 1
        if calls["n"] == 1:
            raise RegistryError("injected: connection reset after the alias moved")

    monkeypatch.setattr(type(registry), "set_alias", flaky_set_alias)
    started = datetime.now(timezone.utc)
    run, other_run = (store.start_run(registry.model_name, flow_run_id=None, reasons=["t"], started_at=started)
                      for _ in range(2))
    with pytest.raises(RegistryError, match="injected"):
        promote(registry, store, version="2", expected_champion="1", actor="a", reason="r", run_id=run)
    # The task retries with the same arguments: same run, same expectation.
    retried = promote(registry, store, version="2", expected_champion="1", actor="a", reason="r", run_id=run)
    assert retried.status == "promoted" and retried.champion == "2"
    assert actions(store, registry) == [("promote", None, "1"), ("promote", "1", "2")]
    assert registry.alias_version(CHAMPION) == "2"
    # Another run with the same stale expectation still loses, and says so.
    other = promote(registry, store, version="3", expected_champion="1", actor="b", reason="r", run_id=other_run)
    assert other.status == "superseded"


def test_promotion_is_atomic_with_its_ledger_row(registry, store, monkeypatch):
    from retrainer.store import ledger as ledger_module

    def broken_append(*args, **kwargs):
        raise RuntimeError("injected: crash between the swap and the ledger row")

    monkeypatch.setattr(ledger_module, "append", broken_append)
    with pytest.raises(RuntimeError, match="injected"):
        promote(registry, store, version="1", expected_champion=None, actor="a", reason="r")
    monkeypatch.undo()
    assert store.champion(registry.model_name) is None  # the swap was rolled back with the row
    assert store.ledger(registry.model_name) == []


def test_resolve_champion_trusts_the_store_and_repairs_a_lagging_alias(registry, store, caplog):
    promote(registry, store, version="1", expected_champion=None, actor="a", reason="first")
    promote(registry, store, version="2", expected_champion="1", actor="a", reason="better")
    registry.set_alias(CHAMPION, "1")  # the alias lags (e.g. a crash between the two writes)
    with caplog.at_level("WARNING", logger="retrainer.deployments.rollout.promotion"):
        assert resolve_champion(registry, store) == "2"
    assert registry.alias_version(CHAMPION) == "2"
    assert "store says 2" in caplog.text

    from retrainer.deployments.rollout.stages import champion_version  # a caller: same answer

    registry.set_alias(CHAMPION, "1")
    assert champion_version(None, store, registry) == "2" and registry.alias_version(CHAMPION) == "2"


@pytest.mark.parametrize("attempt", range(3))
def test_concurrent_rollbacks_for_one_incident_move_one_step(registry, store_url, attempt):
    with Store.open(store_url) as setup:
        for expected, version in ((None, "1"), ("1", "2"), ("2", "3")):
            promote(registry, setup, version=version, expected_champion=expected, actor="setup", reason="base")
    # Two on-call engineers roll back champion 3 at the same moment.
    results, errors = race(2, lambda own, i: rollback(
        registry, own, actor=f"oncall-{i}", reason="incident", expected_champion="3"), each=lambda: Store.open(store_url))
    assert not errors, errors
    assert sorted(r.status for r in results.values()) == ["rolled_back", "superseded"]
    with Store.open(store_url) as check:
        assert check.champion(registry.model_name) == "2"  # one step, not two
        rows = actions(check, registry)
    assert [r for r in rows if r[0] == "rollback"] == [("rollback", "3", "2")]
    assert [r for r in rows if r[0] == "superseded"] == [("superseded", "3", "2")]
    assert registry.alias_version(CHAMPION) == "2"


def test_a_rollback_expecting_a_moved_champion_changes_nothing(registry, store):
    for expected, version in ((None, "1"), ("1", "2"), ("2", "3")):
        promote(registry, store, version=version, expected_champion=expected, actor="a", reason="r")
    assert rollback(registry, store, actor="first", reason="r", expected_champion="3").to_version == "2"
    late = rollback(registry, store, actor="second", reason="r", expected_champion="3")
    assert (late.status, late.from_version, late.to_version, late.champion) == ("superseded", "3", "2", "2")
    assert store.champion(registry.model_name) == "2"
