"""Audit rows, runs, the ledger, champion compare-and-set, profiles, A/B tests, shadow rows."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest
import sqlalchemy as sa

from retrainer.errors import RolloutError, StoreError
from retrainer.store import ShadowRecord, Store

from .conftest import T0

H = timedelta(hours=1)


def test_evaluations_round_trip(store: Store) -> None:
    rows = [
        {"check_id": "c1", "trigger": "drift", "fired": True, "status": "fired", "value": 0.4, "threshold": 0.2,
         "reason": "PSI 0.4 > 0.2", "evidence": {"psi": {"age": 0.4}, "n": 1000}},
        {"check_id": "c1", "trigger": "volume", "fired": False, "status": "insufficient_data", "value": math.nan,
         "threshold": None, "reason": "too few rows", "evidence": {"nan": math.nan}},
    ]
    assert store.record_evaluations("m", T0, rows) == 2
    store.record_evaluations("m", T0 + 2 * H, [{**rows[0], "check_id": "c2"}])
    got = store.evaluations("m")
    assert [(e.check_id, e.trigger, e.fired) for e in got] == [("c1", "drift", True), ("c1", "volume", False), ("c2", "drift", True)]
    assert got[0].evidence == {"psi": {"age": 0.4}, "n": 1000} and got[0].evaluated_at == T0
    assert got[1].value is None and got[1].evidence == {"nan": None}
    assert [e.check_id for e in store.evaluations("m", since=T0 + H)] == ["c2"]
    assert [e.check_id for e in store.evaluations("m", until=T0 + H)] == ["c1", "c1"]
    with pytest.raises(StoreError, match="lacks fired"):
        store.record_evaluations("m", T0, [{"check_id": "x", "trigger": "t", "status": "ok", "reason": "r"}])


def test_evaluations_newest_n_of_a_role_oldest_first(store: Store) -> None:
    for k in range(5):  # per check: two trigger rows and the policy row, same evaluated_at
        store.record_evaluations("m", T0 + k * H, [
            {"check_id": f"c{k}", "trigger": "drift", "fired": False, "status": "ok", "reason": "r", "evidence": {"role": "x"}},
            {"check_id": f"c{k}", "trigger": "volume", "fired": False, "status": "ok", "reason": "r"},
            {"check_id": f"c{k}", "trigger": "any_of", "fired": k % 2 == 0, "status": "ok", "reason": "r",
             "evidence": {"role": "policy", "raw_fired": k % 2 == 0}},
        ])
    store.record_evaluations("other", T0, [{"check_id": "o", "trigger": "any_of", "fired": True, "status": "fired",
                                            "reason": "r", "evidence": {"role": "policy"}}])
    everything = [e for e in store.evaluations("m") if e.evidence.get("role") == "policy"]
    assert [e.check_id for e in store.evaluations("m", role="policy")] == [e.check_id for e in everything]
    assert [e.check_id for e in store.evaluations("m", role="policy", limit=2)] == ["c3", "c4"]
    assert [e.check_id for e in store.evaluations("m", until=T0 + 3 * H, role="policy", limit=2)] == ["c1", "c2"]
    assert [e.check_id for e in store.evaluations("m", role="policy", limit=99)] == [f"c{k}" for k in range(5)]
    assert store.evaluations("m", role="policy", limit=0) == []
    assert [e.trigger for e in store.evaluations("m", limit=2)] == ["volume", "any_of"]  # ties: by id


def test_runs_lifecycle(store: Store) -> None:
    r1 = store.start_run("m", flow_run_id="f1", reasons=["drift"], started_at=T0)
    r2 = store.start_run("m", flow_run_id=None, reasons=[], started_at=T0 + H)
    assert store.last_retrain_at("m") is None
    store.finish_run(r1, status="success", metrics={"f1": 0.9}, version="3", error=None, finished_at=T0 + 0.5 * H)
    store.finish_run(r2, status="failed", metrics=None, version=None, error="boom", finished_at=T0 + 2 * H)
    assert store.last_retrain_at("m") == T0 + 0.5 * H
    runs = store.runs("m", limit=10)
    assert [(r.id, r.status) for r in runs] == [(r2, "failed"), (r1, "success")]
    assert runs[1].metrics == {"f1": 0.9} and runs[1].version == "3" and runs[0].error == "boom"
    with pytest.raises(StoreError, match="already finished"):
        store.finish_run(r1, status="failed", metrics=None, version=None, error=None, finished_at=T0)
    with pytest.raises(StoreError, match="not one of"):
        store.finish_run(r2, status="done", metrics=None, version=None, error=None, finished_at=T0)


def test_ledger_is_append_only(store: Store) -> None:
    run = store.start_run("m", flow_run_id=None, reasons=["schedule"], started_at=T0)
    a = store.append_ledger("m", action="promote", from_version=None, to_version="1", actor="flow", reason="first", at=T0)
    b = store.append_ledger("m", action="rollback", from_version="1", to_version="0", actor="ops", reason="bad", run_id=run)
    entries = store.ledger("m")
    assert [(e.id, e.action, e.to_version) for e in entries] == [(a, "promote", "1"), (b, "rollback", "0")]
    assert entries[0].at == T0 and entries[1].run_id == run
    with pytest.raises(StoreError, match="not one of"):
        store.append_ledger("m", action="delete", from_version=None, to_version=None, actor="x", reason="y")
    for statement in ("UPDATE promotion_ledger SET reason = 'x'", "DELETE FROM promotion_ledger"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert len(store.ledger("m")) == 2


def test_champion_compare_and_set(store: Store) -> None:
    assert store.champion("m") is None
    assert store.champion_cas("m", None, "1") is True
    assert store.champion_cas("m", None, "9") is False  # someone already set it
    assert store.champion_cas("m", "7", "2") is False  # stale expectation
    assert store.champion_cas("m", "1", "2") is True
    assert store.champion("m") == "2"
    assert store.champion("other") is None


def test_reference_profiles(store: Store) -> None:
    assert store.reference_profile("m", "1") is None
    store.save_reference_profile("m", "1", {"age": {"bins": [0, 1, 2], "freq": [0.5, 0.5]}})
    store.save_reference_profile("m", "1", {"age": {"bins": [0, 2], "freq": [1.0]}})
    assert store.reference_profile("m", "1") == {"age": {"bins": [0, 2], "freq": [1.0]}}
    assert store.reference_profile("m", "2") is None


def test_ab_tests(store: Store) -> None:
    t = store.start_ab_test("m", champion_version="1", challenger_version="2", split=0.1, salt="s1", started_at=T0)
    with pytest.raises(RolloutError, match="already running"):
        store.start_ab_test("m", champion_version="1", challenger_version="3", split=0.1, salt="s2")
    active = store.active_ab_test("m")
    assert active is not None and (active.id, active.challenger_version, active.started_at) == (t, "2", T0)
    assert store.record_assignments(t, [("u1", "champion"), ("u2", "challenger"), ("u1", "challenger")]) == 2
    assert store.record_assignments(t, [("u1", "challenger"), ("u3", "champion")]) == 1
    assert store.assignment_counts(t) == {"champion": 2, "challenger": 1}
    store.stop_ab_test(t, reason="significant", result={"p": 0.01})
    with pytest.raises(RolloutError, match="not running"):
        store.stop_ab_test(t, reason="again")
    assert store.active_ab_test("m") is None
    stopped = store.ab_test(t)
    assert stopped is not None and stopped.status == "stopped" and stopped.result == {"p": 0.01}
    t2 = store.start_ab_test("m", champion_version="2", challenger_version="3", split=0.5, salt="s3")
    assert [x.id for x in store.ab_tests("m")] == [t, t2]


def test_shadow_rows(store: Store) -> None:
    rows = [
        ShadowRecord("m", f"r{i}", "1", "2", float(i % 2), 1.0, T0 + i * H, champion_score=0.3, latency_ms=1.5)
        for i in range(4)
    ]
    assert store.record_shadow(rows) == 4
    got = store.shadow_rows("m", since=T0 + H)
    assert [r.request_id for r in got] == ["r1", "r2", "r3"]
    assert got[0].champion_score == 0.3 and got[0].shadow_score is None and got[0].id is not None
    assert store.shadow_rows("m", shadow_version="9") == []
