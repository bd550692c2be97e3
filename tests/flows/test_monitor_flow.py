"""The monitor and fleet flows: policy verdict, audit trail, artifact, retrain request event."""

from __future__ import annotations

import logging

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from retrainer.flows.fleet import fleet, fleet_on_dask
from retrainer.flows.monitor import artifact_key, monitor

from flow_world import NOW

QUIET = [{"type": "data_volume", "min_samples": 10**9, "lookback": "30d"}]
SCHEDULE = [{"type": "schedule", "interval": "7d"}, *QUIET]


def artifacts(key: str):
    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))


def test_monitor_fires_audits_publishes_and_requests_a_retrain(make_world, events):
    world = make_world(triggers=SCHEDULE)
    out = monitor(str(world.config_path), now=NOW)
    assert out["should_retrain"] is True and out["reasons"] == ["schedule"]
    assert out["checks"]["data_volume"]["fired"] is False  # every child evaluated, even after one fired
    assert out["retrain"] is None
    [event] = [e for e in events if e["event"] == "retrainer.retrain.requested"]
    assert event["resource"]["prefect.resource.id"] == f"retrainer.model.{world.cfg.model.name}"
    assert event["payload"]["reasons"] == ["schedule"]
    assert event["payload"]["config_path"] == str(world.config_path.resolve())
    audit = world.store().evaluations(world.cfg.model.name)
    assert {e.trigger for e in audit} >= {"schedule", "data_volume"}
    [artifact] = artifacts(artifact_key(world.cfg.model.name))
    assert "| schedule | fired |" in artifact.data and "**retrain**: schedule" in artifact.data


def test_monitor_stays_quiet_when_nothing_fires(make_world, events, stream):
    world = make_world(triggers=QUIET)
    # A writer that flushed small batches: the monitor compacts them before checking.
    served = stream[stream["ts"] < NOW].tail(60).drop(columns=["label", "label_ts"]).assign(prediction=1.0)
    with world.store() as store:
        for start in range(0, 60, 3):
            store.log_prediction_frame(world.cfg.model.name, served.iloc[start : start + 3], world.cfg.data.features)
    out = monitor(str(world.config_path), now=NOW)
    assert out["compaction"]["chunks_before"] == 20 and out["compaction"]["chunks_after"] < 20
    assert out["should_retrain"] is False and out["reasons"] == []
    assert [e for e in events if e["event"] == "retrainer.retrain.requested"] == []
    assert world.store().runs(world.cfg.model.name) == []


def test_monitor_can_run_the_retrain_as_a_subflow(make_world):
    world = make_world(triggers=SCHEDULE)
    out = monitor(str(world.config_path), now=NOW, run_retrain=True)
    assert out["retrain"]["status"] == "success" and out["retrain"]["reasons"] == ["schedule"]
    assert world.store().champion(world.cfg.model.name) == "1"
    # The retrain reset the schedule, and the cooldown holds off a second one.
    again = monitor(str(world.config_path), now=NOW)
    assert again["should_retrain"] is False


def test_fleet_checks_every_model_and_reports_a_broken_one(make_world, events, tmp_path):
    loud, quiet = make_world(triggers=SCHEDULE), make_world(triggers=QUIET)
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: {name: x}\n")
    out = fleet(config_paths=[str(loud.config_path), str(quiet.config_path), str(broken)], now=NOW)
    by_path = {r["config_path"]: r for r in out["checks"]}
    assert by_path[str(loud.config_path)]["should_retrain"] is True
    assert by_path[str(quiet.config_path)]["should_retrain"] is False
    assert "ConfigError" in by_path[str(broken)]["error"] and "data" in by_path[str(broken)]["error"]
    # A schedule is not a statistical test: the fleet control does not hold it back, and says so.
    assert by_path[str(loud.config_path)]["outcome"] == "fired" and "not subject" in by_path[str(loud.config_path)]["why"]
    assert (out["n_fired"], out["n_held_back"], out["n_errors"]) == (1, 0, 1)
    requested = [e for e in events if e["event"] == "retrainer.retrain.requested"]
    assert [e["payload"]["config_path"] for e in requested] == [str(loud.config_path)]


def test_fleet_on_a_local_dask_cluster(make_world, caplog, monkeypatch):
    monkeypatch.delenv("RETRAINER_DEBUG", raising=False)
    worlds = [make_world(triggers=SCHEDULE), make_world(triggers=QUIET)]
    with caplog.at_level(logging.DEBUG, logger="prefect"):  # capture, without lowering distributed's level
        results = fleet_on_dask(config_paths=[str(w.config_path) for w in worlds], now=NOW, emit_events=False)["checks"]
    assert [r["should_retrain"] for r in results] == [True, False]
    assert [r["model"] for r in results] == [w.cfg.model.name for w in worlds]
    # The cluster's INFO lines (scheduler start, nanny, client) reached the console via Prefect's root handler.
    chatter = [r for r in caplog.records if r.name.startswith("distributed") and r.levelno < logging.WARNING]
    assert chatter == []
