"""``retrainer rollout status|advance|abort`` against a real store and MLflow registry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from retrainer.cli import main
from retrainer.config import load_config
from retrainer.deployments.rollout.advance import admit_challenger
from retrainer.deployments.rollout.promotion import promote
from retrainer.deployments.rollout.stages import shadow_state
from retrainer.registry import CHALLENGER, Registry
from retrainer.store import Store

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
pytestmark = pytest.mark.slow  # a real MLflow registry and store per test


@pytest.fixture
def setup(tmp_path: Path, tiny_registry):
    name = "cli-rollout-model"
    uri = tiny_registry(tmp_path, name, 2)
    path = tmp_path / "retrainer.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"name": name}, "store": {"url": "sqlite:///store.db"}, "mlflow": {"tracking_uri": uri},
        "data": {"source": {"table": "t"}, "features": [{"name": "x1"}]},
        "rollout": {"mode": "shadow", "shadow": {"duration": "1d", "min_comparisons": 10}},
    }))
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.init()
    registry = Registry(uri, model_name=name)
    promote(registry, store, version="1", expected_champion=None, actor="test", reason="first", at=T0)
    yield path, store, registry
    store.close()


def test_status_advance_abort(setup, capsys) -> None:
    path, store, registry = setup
    cfg = load_config(path)
    assert main(["rollout", "status", "--json", "-c", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"model": cfg.model.name, "in_flight": None, "rollouts": []}

    admit_challenger(cfg, store, registry, version="2", now=T0)
    assert main(["rollout", "advance", "--json", "--at", "2026-03-02T12:00Z", "-c", str(path)]) == 0
    step = json.loads(capsys.readouterr().out)
    assert (step["action"], step["stage"], step["version"]) == ("waiting", "shadow", "2")
    assert step["waiting_for"] == ["shadow.duration: 21h0m more (of 1d0h)",
                                   "shadow.min_comparisons: 0 of 10 requests compared (guardrails not judged yet)"]

    assert main(["rollout", "status", "--json", "-c", str(path)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["in_flight"]["stage"] == "shadow" and status["in_flight"]["decision"] == "waiting"
    post = status["in_flight"]["posterior"]  # no pair yet: the prior (neutral: no offline record)
    assert post["mean"] == 0.0 and post["n_labelled"] == 0 and len(status["in_flight"]["trail"]) == 1
    assert [s["stage"] for s in status["rollouts"][0]["stages"]] == ["staged", "shadow"]

    assert main(["rollout", "abort", "--reason", "not today", "--json", "-c", str(path)]) == 0
    aborted = json.loads(capsys.readouterr().out)
    assert (aborted["action"], aborted["stage"], aborted["explanation"]) == ("aborted", "aborted", "not today")
    assert shadow_state(cfg, store, registry).version is None and registry.alias_version(CHALLENGER) is None
    assert store.ledger(cfg.model.name)[-1].action == "rollout_abort"


def test_errors_are_one_line_and_exit_2(setup, capsys) -> None:
    path, _, _ = setup
    assert main(["rollout", "abort", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no rollout of 'cli-rollout-model' is in flight" in err
    assert main(["rollout", "advance", "--at", "yesterday", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--at 'yesterday' is not an ISO-8601" in err
