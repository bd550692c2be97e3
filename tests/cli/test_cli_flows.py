"""`retrainer monitor | retrain | history | promote | rollback` through the real entry point."""

from __future__ import annotations

import json

import pytest

from retrainer.cli import main
from retrainer.registry import CHAMPION

from flow_world import NOW

pytestmark = pytest.mark.usefixtures("prefect_harness")  # the flows run on the session's harness


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    if code != 0:
        print(captured.err[-3000:])  # shown by pytest when the test fails
    return code, json.loads(captured.out) if captured.out.strip() else {}


def test_retrain_history_promote_and_rollback(make_world, capsys):
    world = make_world()
    cfg = str(world.config_path)
    at = NOW.isoformat()
    code, first = run_json(capsys, "retrain", "--config", cfg, "--force", "--at", at)
    assert code == 0 and first["status"] == "success" and first["version"] == "1"
    code, second = run_json(capsys, "retrain", "--config", cfg, "--reason", "drift", "--at", at)
    assert code == 0 and second["status"] == "success" and second["reasons"] == ["drift"]
    assert set(second["champion_metrics"]) == {"accuracy", "f1", "precision", "recall", "roc_auc"}
    # Δ_off on the gate metric, paired on the same holdout, stored with the version.
    assert first["offline_delta"] is None  # no champion to compare with
    delta = second["offline_delta"]
    assert set(delta) == {"metric", "mean", "se", "n", "interval_95", "disagreement"} and delta["metric"] == "f1"
    assert delta["mean"] == pytest.approx(second["candidate_metrics"]["f1"] - second["champion_metrics"]["f1"], abs=1e-12)
    assert delta["n"] == second["data"]["holdout_samples"] and delta["se"] >= 0
    assert world.store().offline_delta(world.cfg.model.name, "2") == (delta["mean"], delta["se"])

    code, history = run_json(capsys, "history", "--config", cfg)
    assert history["champion"] == "2"
    assert [(e["action"], e["to_version"]) for e in history["ledger"]] == [("promote", "1"), ("promote", "2")]
    assert [r["status"] for r in history["runs"]] == ["success", "success"]

    code, rolled = run_json(capsys, "rollback", "--config", cfg, "--reason", "bad canary")
    assert code == 0 and (rolled["status"], rolled["to_version"]) == ("rolled_back", "1")
    assert world.registry().alias_version(CHAMPION) == "1"
    code, promoted = run_json(capsys, "promote", "2", "--config", cfg)
    assert code == 0 and promoted["champion"] == "2"
    actions = [e.action for e in world.store().ledger(world.cfg.model.name)]
    assert actions == ["promote", "promote", "rollback", "promote"]


def test_monitor_json_has_the_seed_shape(make_world, capsys):
    world = make_world(triggers=[{"type": "schedule", "interval": "7d"}])
    code, out = run_json(capsys, "monitor", "--config", str(world.config_path), "--at", NOW.isoformat())
    assert code == 0
    assert out["should_retrain"] is True and out["reasons"] == ["schedule"]
    assert set(out["checks"]["schedule"]) >= {"fired", "status", "value", "threshold", "reason"}


def test_promote_of_an_unknown_version_is_a_clear_error(make_world, capsys):
    world = make_world()
    main(["retrain", "--config", str(world.config_path), "--force", "--at", NOW.isoformat(), "--json"])
    capsys.readouterr()
    assert main(["promote", "9", "--config", str(world.config_path)]) == 2
    assert "has no version 9" in capsys.readouterr().err


def test_retrain_table_shows_the_offline_difference(make_world, capsys):
    world = make_world()
    cfg = str(world.config_path)
    assert main(["retrain", "--config", cfg, "--force", "--at", NOW.isoformat()]) == 0
    assert "offline Δ" not in capsys.readouterr().out  # the first model has nothing to differ from
    assert main(["retrain", "--config", cfg, "--force", "--at", NOW.isoformat()]) == 0
    out = capsys.readouterr().out
    assert "offline Δ" in out and "f1 +0.0000 (95% +0.0000 to +0.0000)" in out, out  # same data, same model
