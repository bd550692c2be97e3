"""run_check on a real SQLite store: context from the store, audit rows, hysteresis from the audit."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest

from retrainer.config import parse_config
from retrainer.demo.data import FEATURES, StreamSpec, day_start, generate_stream
from retrainer.profiles import build_reference_profile
from retrainer.store import LabelRecord, Store
from retrainer.triggers import ChampionInfo
from retrainer.triggers.check import POLICY_ROLE, run_check

SPEC = StreamSpec(days=20, rows_per_day=300, drift_day=12, seed=3)


def demo_store(url: str, spec: StreamSpec = SPEC) -> Store:
    """A store holding the demo stream's predictions and labels, champion "1" trained before the drift."""
    stream = generate_stream(spec)
    store = Store.open(url)
    store.init()
    frame = stream.rename(columns={"label": "_label"}).copy()
    frame["score"] = np.clip(0.5 + (frame["debt_ratio"] - 0.3), 0, 1)
    frame["prediction"] = (frame["score"] > 0.5).astype(float)
    frame["model_version"] = "1"
    cols = ["request_id", "ts", "prediction", "score", "model_version"] + [f.name for f in FEATURES]
    for start in range(0, len(frame), 2000):
        store.log_prediction_frame("credit", frame[cols].iloc[start:start + 2000], FEATURES)
    store.log_labels([LabelRecord(r, float(y), t.to_pydatetime())
                      for r, y, t in zip(stream["request_id"], stream["label"], stream["label_ts"].dt.floor("us"))])
    trained_at = day_start(spec, 8)
    train = stream[stream["ts"] < trained_at]
    store.save_reference_profile("credit", "1", build_reference_profile(
        train, FEATURES, model_version="1", registered_at=trained_at))
    assert store.champion_cas("credit", None, "1")
    run = store.start_run("credit", flow_run_id=None, reasons=["bootstrap"], started_at=trained_at - timedelta(hours=1))
    store.finish_run(run, status="success", metrics={}, version="1", error=None, finished_at=trained_at)
    return store


def config(tmp_path, **policy):
    return parse_config({
        "model": {"name": "credit"},
        "store": {"url": f"sqlite:///{tmp_path / 'r.db'}"},
        "data": {"features": [f.model_dump() for f in FEATURES]},
        "triggers": [
            {"type": "schedule", "interval": "30d"},
            {"type": "model_age", "max_age": "60d"},
            {"type": "performance", "window": "7d", "min_labels": 200},
            {"type": "drift", "window": "2d"},
            {"type": "data_volume", "min_samples": 100000, "lookback": "30d"},
        ],
        "policy": {"cooldown": "1d", **policy},
    }, base_dir=tmp_path)  # relative paths (MLflow's default sqlite:///mlflow.db) land in tmp_path, not the repo


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("check") / "template.db"
    demo_store(f"sqlite:///{path}").close()
    return path


@pytest.fixture
def store(db, tmp_path):
    copy = tmp_path / "r.db"
    copy.write_bytes(db.read_bytes())
    s = Store.open(f"sqlite:///{copy}")
    yield s
    s.close()


def test_check_reads_the_store_and_writes_one_audit_row_per_trigger(tmp_path, store):
    now = day_start(SPEC, 19)
    result = run_check(config(tmp_path), store=store, now=now)
    checks = {d.trigger: d for d in result.children}
    assert result.should_retrain and "drift" in result.reasons
    assert checks["drift"].fired and checks["schedule"].status == "ok"
    assert checks["model_age"].value == pytest.approx(11.0)  # created_at = the profile's registered_at
    assert checks["schedule"].value == pytest.approx(11.0)  # last_retrain_at = the last successful run
    rows = store.evaluations("credit")
    assert len(rows) == 6 and {r.check_id for r in rows} == {result.check_id}
    policy = [r for r in rows if r.evidence.get("role") == POLICY_ROLE]
    assert len(policy) == 1 and policy[0].evidence["raw_fired"] is True and policy[0].fired
    assert "children" not in policy[0].evidence
    payload = json.loads(result.to_json())
    assert set(payload) == {"should_retrain", "reasons", "checks"}
    drift = payload["checks"]["drift"]
    assert set(drift) == {"fired", "status", "value", "threshold", "reason", "evidence"}
    assert drift["evidence"] and drift["evidence"] == checks["drift"].to_dict()["evidence"]  # each check carries its evidence


def test_before_the_drift_the_drift_trigger_is_quiet(tmp_path, store):
    result = run_check(config(tmp_path), store=store, now=day_start(SPEC, 11))
    drift = {d.trigger: d for d in result.children}["drift"]
    assert drift.status == "ok" and drift.value < 0.25, drift.reason


def test_hysteresis_history_comes_from_the_audit(tmp_path, store):
    cfg = config(tmp_path, consecutive=2, cooldown="0s")
    now = day_start(SPEC, 18)
    first = run_check(cfg, store=store, now=now)
    assert first.raw.fired and not first.should_retrain and "hysteresis" in first.decision.reason
    second = run_check(cfg, store=store, now=now + timedelta(hours=6))
    assert second.should_retrain
    assert len({r.check_id for r in store.evaluations("credit")}) == 2


def test_no_audit_and_explicit_champion(tmp_path, store):
    champ = ChampionInfo("1")  # no created_at: filled from the profile
    result = run_check(config(tmp_path), store=store, now=day_start(SPEC, 19), write_audit=False, champion=champ)
    assert result.check_id == "" and store.evaluations("credit") == []
    assert {d.trigger: d for d in result.children}["model_age"].status == "ok"


def test_no_champion_no_reference(tmp_path):
    s = Store.open(f"sqlite:///{tmp_path / 'empty.db'}")
    s.init()
    result = run_check(config(tmp_path), store=s, now=day_start(SPEC, 19))
    checks = {d.trigger: d for d in result.children}
    assert checks["schedule"].fired and "never retrained" in checks["schedule"].reason
    assert checks["drift"].status == checks["model_age"].status == "insufficient_data"
    s.close()
