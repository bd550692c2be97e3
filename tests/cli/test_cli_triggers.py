"""``retrainer check``, ``retrainer backtest`` and ``retrainer triggers list`` through the real entry point."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from retrainer.cli import main

_spec = importlib.util.spec_from_file_location(
    "_demo_store_for_cli", Path(__file__).parents[1] / "triggers" / "test_check.py")
demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(demo)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, mlflow_db_template):
    root = tmp_path_factory.mktemp("cli")
    demo.demo_store(f"sqlite:///{root / 'r.db'}").close()
    cfg = demo.config(root).model_dump(mode="json", by_alias=True, exclude={"base_dir"})
    cfg["store"]["url"] = "sqlite:///r.db"  # relative to the config file
    # check asks MLflow who the champion is (the store's answer wins; this registry is empty).
    shutil.copy(mlflow_db_template, root / "mlflow.db")
    cfg["mlflow"] = {**cfg.get("mlflow", {}), "tracking_uri": f"sqlite:///{root / 'mlflow.db'}",
                     "artifact_location": str(root / "artifacts")}
    path = root / "retrainer.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_check_json_has_the_seed_shape(config_file, capsys):
    assert main(["check", "--config", str(config_file), "--json", "--at", "2026-01-20T00:00Z"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"should_retrain", "reasons", "checks"}
    assert out["should_retrain"] is True and "drift" in out["reasons"]
    assert set(out["checks"]) == {"schedule", "model_age", "performance", "drift", "data_volume"}
    assert set(out["checks"]["drift"]) == {"fired", "status", "value", "threshold", "reason", "evidence"}
    assert out["checks"]["drift"]["evidence"]  # what the trigger saw, not just its verdict


def test_check_table(config_file, capsys):
    assert main(["check", "--config", str(config_file), "--at", "2026-01-20", "--no-audit"]) == 0
    out = capsys.readouterr().out
    assert "drift" in out and "retrain" in out


def test_check_bad_instant_is_one_clear_error(config_file, capsys):
    assert main(["check", "--config", str(config_file), "--at", "yesterday"]) == 2
    assert "ISO-8601" in capsys.readouterr().err


def test_backtest_json_and_plot(config_file, tmp_path, capsys):
    png = tmp_path / "bt.png"
    argv = ["backtest", "--config", str(config_file), "--start", "2026-01-09", "--end", "2026-01-20",
            "--every", "1d", "--plot", str(png), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["steps"]) == 12 and out["fires"] and out["plot"] == str(png)
    assert set(out["steps"][0]["triggers"]) == {"schedule", "model_age", "performance", "drift", "data_volume"}
    assert png.stat().st_size > 10_000


def test_triggers_list(capsys):
    assert main(["triggers", "list", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["drift"]["class"] == "retrainer.triggers.drift:DriftTrigger"
    assert rows["drift"]["distribution"] == "retrainer" and rows["drift"]["version"]
    assert "psi_threshold" in rows["drift"]["params_schema"]["properties"]
    assert main(["triggers", "list"]) == 0
    assert "performance" in capsys.readouterr().out


def test_check_json_explains_a_no_when_a_trigger_fired(config_file, capsys):
    cfg = yaml.safe_load(config_file.read_text())
    cfg["policy"] = {"mode": "at_least", "k": len(cfg["triggers"])}  # every trigger must fire: they do not
    strict = config_file.with_name("strict.yaml")
    strict.write_text(yaml.safe_dump(cfg))
    assert main(["check", "--config", str(strict), "--json", "--no-audit", "--at", "2026-01-20T00:00Z"]) == 0
    out = json.loads(capsys.readouterr().out)
    fired = [label for label, c in out["checks"].items() if c["fired"]]
    assert "drift" in fired and len(fired) < len(cfg["triggers"])
    assert out["should_retrain"] is False and out["reasons"] == []
    assert out["suppressed_by"] == ["k_not_reached"] and out["until"] is None
    assert f"{len(fired)} of" in out["explanation"]


def test_check_and_backtest_say_when_the_policy_could_not_decide(config_file, capsys):
    cfg = yaml.safe_load(config_file.read_text())
    cfg["triggers"] = [{"type": "performance", "min_labels": 100_000}]  # more labels than the store will ever hold
    blind = config_file.with_name("blind.yaml")
    blind.write_text(yaml.safe_dump(cfg))
    assert main(["check", "--config", str(blind), "--at", "2026-01-20", "--no-audit"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines at its width
    assert out.count("! could not decide: ") == 1
    assert "! could not decide: performance: Not enough labels" in out and "min_samples 100000" in out
    argv = ["backtest", "--config", str(blind), "--start", "2026-01-15", "--end", "2026-01-20", "--every", "1d"]
    assert main(argv) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "could not decide at 6 of 6 steps (100%)" in out
    assert "! the policy could not decide at 6 of 6 checks (100%): performance: Not enough labels" in out
