"""The CLI's config commands and error handling, through the real entry point."""

from __future__ import annotations

import json

import yaml

from retrainer import __version__
from retrainer.cli import main
from retrainer.config import example_config_path


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"retrainer {__version__}"


def test_validate_json_prints_resolved_config_and_masks_token(capsys, monkeypatch):
    monkeypatch.setenv("RETRAINER_API_TOKEN", "topsecret")
    assert main(["config", "validate", str(example_config_path()), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is True
    assert out["config"]["model"]["name"] == "credit-default"
    assert out["config"]["estimator"]["class"] == "sklearn.ensemble.HistGradientBoostingClassifier"
    assert out["config"]["serving"]["api_token"] == "***"
    assert out["config"]["policy"]["cooldown"] == "1d"


def test_invalid_config_is_one_clear_error_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "retrainer.yaml"
    bad.write_text(yaml.safe_dump({"model": {"name": "m"}, "data": {"features": []}, "rollout": {"mode": "x"}}))
    assert main(["config", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "data.features" in err and "rollout.mode" in err
    assert "Traceback" not in err


def test_example_round_trips(capsys):
    assert main(["config", "example"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["model"]["name"] == "credit-default"


def test_schema_lists_every_section(capsys):
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"model", "store", "data", "triggers", "policy", "gate", "rollout"} <= set(schema["properties"])
