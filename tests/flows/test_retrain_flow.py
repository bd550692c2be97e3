"""The retrain flow end to end on the real stack: the seed's cases and the reliability it lacked."""

from __future__ import annotations

import threading

import pytest
from mlflow import MlflowClient

from retrainer.flows.retrain import retrain
from retrainer.registry import CHALLENGER, CHAMPION, Registry

from flow_world import NOW
from thread_race import race

DUMMY = {"class": "sklearn.dummy.DummyClassifier", "params": {"strategy": "most_frequent"}}  # majority: no default -> f1 0


def versions(world) -> list[str]:
    reg = world.registry()
    return [str(v.version) for v in reg.client.search_model_versions(f"name = '{reg.model_name}'")]


def test_first_retrain_trains_registers_and_promotes(make_world):
    world = make_world()
    out = retrain(str(world.config_path), force=True, now=NOW)
    assert out["status"] == "success" and out["version"] == "1" and out["reasons"] == ["manual"]
    assert out["champion_metrics"] is None  # nothing to compare with: accepted
    assert out["candidate_metrics"]["f1"] > 0.75
    assert out["data"]["train_samples"] + out["data"]["holdout_samples"] >= 2000
    reg, store = world.registry(), world.store()
    assert reg.alias_version(CHAMPION) == "1" and store.champion(reg.model_name) == "1"
    assert reg.alias_version(CHALLENGER) is None  # promoted: no longer staged
    assert [(e.action, e.to_version) for e in store.ledger(reg.model_name)] == [("promote", "1")]
    [run] = store.runs(reg.model_name)
    assert (run.status, run.version, run.finished_at) == ("success", "1", NOW)
    profile = store.reference_profile(reg.model_name, "1")
    assert set(profile["features"]) == set(world.cfg.data.feature_names)
    # Registration calibrated the candidate's holdout scores (what estimated_performance reads).
    assert profile["calibration"]["method"] in {"isotonic", "platt"} and profile["calibration"]["n"] > 0
    assert profile["holdout_metrics"]["f1"] == out["candidate_metrics"]["f1"]
    mv = reg.get_version("1")
    assert mv.tags["retrainer.idempotency_key"].startswith("flow-run-")
    [report] = reg.client.list_artifacts(mv.run_id, "reports")
    assert report.path == "reports/drift_report.html" and report.file_size > 10_000  # Evidently's HTML


def test_gate_rejects_a_weaker_candidate_and_registers_nothing(make_world):
    world = make_world()
    retrain(str(world.config_path), force=True, now=NOW)
    world.reconfigure(estimator=DUMMY)
    out = retrain(str(world.config_path), reasons=["drift"], now=NOW)
    assert out["status"] == "no_improvement"
    assert out["gate"]["accepted"] is False and out["candidate_metrics"]["f1"] == 0.0
    assert out["champion_metrics"]["f1"] > 0.75
    # The paired holdout difference is recorded even when the gate says no: evidence either way.
    delta = out["offline_delta"]
    assert delta["metric"] == "f1" and delta["mean"] == pytest.approx(-out["champion_metrics"]["f1"], abs=1e-12)
    assert 0 < delta["se"] < 0.05 and delta["interval_95"][1] < 0
    assert world.store().runs(world.cfg.model.name)[0].metrics["offline_delta"] == delta
    assert versions(world) == ["1"]
    store = world.store()
    last = store.ledger(world.cfg.model.name)[-1]
    assert (last.action, last.from_version, last.to_version) == ("reject", "1", None)
    assert store.champion(world.cfg.model.name) == "1"


def test_shadow_rollout_stages_the_challenger_and_keeps_the_champion(make_world):
    world = make_world()
    retrain(str(world.config_path), force=True, now=NOW)
    world.reconfigure(rollout={"mode": "shadow"})
    out = retrain(str(world.config_path), reasons=["schedule"], now=NOW)
    assert (out["status"], out["version"], out["rollout"]) == ("success", "2", "shadow")
    reg = world.registry()
    assert reg.alias_version(CHAMPION) == "1" and reg.alias_version(CHALLENGER) == "2"
    # The retrain flow hands over to the rollout flow: a rollout row, staged, then in shadow.
    assert [e.action for e in world.store().ledger(reg.model_name)] == [
        "promote", "rollout_start", "shadow_start", "rollout_advance"]
    [rollout] = world.store().rollouts(reg.model_name)
    assert (rollout.version, rollout.champion_version, rollout.stage) == ("2", "1", "shadow")


def test_ab_rollout_opens_an_ab_test(make_world):
    world = make_world()
    retrain(str(world.config_path), force=True, now=NOW)
    world.reconfigure(rollout={"mode": "ab", "ab": {"split": 0.2, "salt": "s1"}})
    out = retrain(str(world.config_path), reasons=["schedule"], now=NOW)
    test = world.store().active_ab_test(world.cfg.model.name)
    assert out["rollout"] == "ab" and test is not None
    assert (test.champion_version, test.challenger_version, test.split, test.salt) == ("1", "2", 0.2, "s1")


def test_without_reasons_the_policy_decides(make_world):
    world = make_world(triggers=[{"type": "data_volume", "min_samples": 10**9, "lookback": "30d"}])
    assert retrain(str(world.config_path), now=NOW)["status"] == "skipped"
    assert versions(world) == []


def test_failure_leaves_a_failed_run_emits_the_event_and_notifies(make_world, events, webhook):
    world = make_world(notifications={"block": webhook.block_name})
    world.reconfigure(data={"source": {"url": "sqlite:///warehouse.db", "table": "no_such_table"}},
                      notifications={"block": webhook.block_name})
    with pytest.raises(Exception, match="no_such_table"):
        retrain(str(world.config_path), force=True, now=NOW)
    [run] = world.store().runs(world.cfg.model.name)
    assert run.status == "failed" and "no_such_table" in run.error
    failed = [e for e in events if e["event"] == "retrainer.retrain.failed"]
    assert len(failed) == 1 and failed[0]["resource"]["prefect.resource.id"] == f"retrainer.model.{world.cfg.model.name}"
    assert webhook.wait_for(1), "the notification block was not called"
    assert "failed" in webhook.bodies[0] and world.cfg.model.name in webhook.bodies[0]


def test_transient_faults_in_load_register_and_promote_end_with_one_version_and_one_promotion(
    make_world, monkeypatch
):
    from retrainer.errors import StoreError
    from retrainer.tasks import load as load_module

    world = make_world()
    faults = {"load": 1, "register": 1, "promote": 1}
    real_read = load_module._read_source

    def flaky_read(*args, **kwargs):
        if faults["load"]:
            faults["load"] -= 1
            raise StoreError("injected: cannot read training data: database is locked")
        return real_read(*args, **kwargs)

    real_create = MlflowClient.create_model_version

    def flaky_create(self, *args, **kwargs):
        version = real_create(self, *args, **kwargs)  # the side effect happens, then the reply is lost
        if faults["register"]:
            faults["register"] -= 1
            raise ConnectionError("injected: connection reset after the version was created")
        return version

    real_alias = Registry.set_alias

    def flaky_alias(self, alias, version):
        real_alias(self, alias, version)
        if alias == CHAMPION and faults["promote"]:
            faults["promote"] -= 1
            raise ConnectionError("injected: connection reset after the alias moved")

    monkeypatch.setattr(load_module, "_read_source", flaky_read)
    monkeypatch.setattr(MlflowClient, "create_model_version", flaky_create)
    monkeypatch.setattr(Registry, "set_alias", flaky_alias)
    out = retrain(str(world.config_path), force=True, now=NOW)
    assert faults == {"load": 0, "register": 0, "promote": 0}  # every fault was hit
    assert out["status"] == "success"
    assert versions(world) == ["1"]
    assert [e.action for e in world.store().ledger(world.cfg.model.name)] == ["promote"]


def test_racing_retrains_promote_exactly_once(make_world, monkeypatch):
    """Two real retrain runs at once against the same champion: one wins, the other is superseded."""
    from retrainer.store import Store

    world = make_world()
    retrain(str(world.config_path), force=True, now=NOW)
    barrier = threading.Barrier(2, timeout=120)
    real_swap = Store.swap_champion

    def swap_together(self, *args, **kwargs):
        barrier.wait()  # both runs have trained, evaluated and registered: now race the swap
        return real_swap(self, *args, **kwargs)

    monkeypatch.setattr(Store, "swap_champion", swap_together)
    reasons = ("drift", "performance")
    by_index, errors = race(2, lambda _, i: retrain(str(world.config_path), reasons=[reasons[i]], now=NOW), timeout=300)
    results = list(by_index.values())
    assert not errors, errors
    assert sorted(r["status"] for r in results) == ["success", "superseded"]
    winner = next(r for r in results if r["status"] == "success")["version"]
    store, reg = world.store(), world.registry()
    assert store.champion(reg.model_name) == winner and reg.alias_version(CHAMPION) == winner
    actions = [e.action for e in store.ledger(reg.model_name)]
    assert actions.count("promote") == 2 and actions.count("superseded") == 1  # first model + the winner
    assert sorted(versions(world)) == ["1", "2", "3"]
