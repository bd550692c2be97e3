"""``retrainer ab ...`` and ``retrainer shadow ...`` end to end against a real store and MLflow registry."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml

from retrainer.cli import main
from retrainer.config import FeatureSpec
from retrainer.deployments.rollout.ab import arm_for
from retrainer.deployments.rollout.promotion import promote
from retrainer.registry import CHALLENGER, CHAMPION, Registry
from retrainer.store import LabelRecord, PredictionRecord, Store


@pytest.fixture
def setup(tmp_path: Path, tiny_registry):
    name = "cli-model"
    uri = tiny_registry(tmp_path, name, 3)  # promote/shadow/ab refuse versions they would not load: a real tiny model
    registry = Registry(uri, model_name=name)
    cfg = {
        "model": {"name": name},
        "store": {"url": "sqlite:///store.db"},
        "mlflow": {"tracking_uri": uri},
        "data": {"source": {"table": "t"}, "features": [{"name": "x1"}]},
        "rollout": {"ab": {"sequential": True, "min_detectable_effect": 0.05}},
        "serving": {"port": 1},  # nothing listens there: live shadow figures are unavailable
    }
    path = tmp_path / "retrainer.yaml"
    path.write_text(yaml.safe_dump(cfg))
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.init()
    promote(registry, store, version="1", expected_champion=None, actor="test", reason="first champion")
    yield path, store, registry
    store.close()


def run(capsys, *args: str) -> tuple[int, dict | None]:
    code = main(list(args))
    out = capsys.readouterr().out
    try:
        return code, json.loads(out)
    except json.JSONDecodeError:
        return code, None


def fill(store: Store, test_id: int, salt: str, split: float, n: int = 3000) -> None:
    rng = np.random.default_rng(5)
    start = store.ab_test(test_id).started_at  # traffic after the test started, before now
    preds, labels, assigns = [], [], []
    for i in range(n):
        unit = f"u{i}"
        arm = arm_for(salt, unit, split)
        version = "2" if arm == "challenger" else "1"
        y = int(rng.integers(0, 2))
        pred = y if rng.random() < (0.9 if version == "2" else 0.7) else 1 - y
        ts = start + timedelta(microseconds=i)
        preds.append(PredictionRecord(f"r{i}", {"x1": 0.0}, float(pred), ts, version, unit, arm, None, test_id))
        labels.append(LabelRecord(f"r{i}", float(y), ts))
        assigns.append((unit, arm))
    store.log_predictions("cli-model", preds, [FeatureSpec(name="x1")])
    store.log_labels(labels)
    store.record_assignments(test_id, assigns)


def test_ab_lifecycle_with_promotion(setup, capsys) -> None:
    cfg, store, registry = setup
    c = str(cfg)
    code, started = run(capsys, "ab", "start", "--challenger", "2", "--split", "0.5", "--salt", "s1", "-c", c, "--json")
    assert code == 0 and started["champion_version"] == "1" and started["challenger_version"] == "2"
    assert registry.alias_version(CHALLENGER) == "2"
    assert run(capsys, "ab", "start", "--challenger", "3", "-c", c)[0] == 2  # one test at a time

    code, status = run(capsys, "ab", "status", "-c", c, "--json")
    assert code == 0 and status["test"]["id"] == started["id"] and status["units"] == {}
    code, early = run(capsys, "ab", "analyze", "-c", c, "--json")
    assert code == 0 and early["verdict"] == "keep_collecting"
    assert run(capsys, "ab", "stop", "--promote", "-c", c)[0] == 2  # no verdict yet: refused

    fill(store, started["id"], "s1", 0.5)
    code, analysis = run(capsys, "ab", "analyze", "-c", c, "--json")
    assert code == 0 and analysis["verdict"] == "promote_challenger"
    assert analysis["arms"]["challenger"]["accuracy"] > analysis["arms"]["champion"]["accuracy"]
    assert analysis["decision"]["posterior"]["posterior_mean"] > 0 and not analysis["decision"]["srm_mismatch"]
    assert main(["ab", "analyze", "-c", c]) == 0  # the table renders
    assert "promote_challenger" in capsys.readouterr().out

    code, stopped = run(capsys, "ab", "stop", "--promote", "-c", c, "--json")
    assert code == 0 and stopped["status"] == "promoted"
    assert registry.alias_version(CHAMPION) == "2"
    actions = [e.action for e in store.ledger("cli-model")]
    assert actions[1] == "ab_start" and actions.count("promote") == 2 and actions[-1] == "ab_stop"
    assert store.active_ab_test("cli-model") is None


def test_ab_abort_and_flag_checks(setup, capsys) -> None:
    cfg, _store, registry = setup
    c = str(cfg)
    assert run(capsys, "ab", "start", "--challenger", "1", "-c", c)[0] == 2  # the champion itself
    assert run(capsys, "ab", "start", "--challenger", "3", "-c", c, "--json")[0] == 0
    assert run(capsys, "ab", "stop", "-c", c)[0] == 2  # neither --promote nor --abort
    code, out = run(capsys, "ab", "stop", "--abort", "-c", c, "--json")
    assert code == 0 and out["status"] == "aborted"
    assert registry.alias_version(CHAMPION) == "1"
    assert run(capsys, "ab", "stop", "--abort", "-c", c)[0] == 2  # nothing running


def test_shadow_start_report_stop(setup, capsys) -> None:
    cfg, store, _ = setup
    c = str(cfg)
    assert run(capsys, "shadow", "start", "--version", "1", "-c", c)[0] == 2  # the champion
    code, out = run(capsys, "shadow", "start", "--version", "3", "--sample", "0.5", "-c", c, "--json")
    assert code == 0 and out == {"shadow_version": "3", "champion_version": "1", "sample": 0.5}
    code, report = run(capsys, "shadow", "report", "-c", c, "--json")
    assert code == 0 and report["state"]["shadow_version"] == "3" and report["state"]["sample"] == 0.5
    assert report["stored"] == {} and report["live"] is None
    assert main(["shadow", "report", "-c", c]) == 0
    assert "not reachable" in capsys.readouterr().out
    code, out = run(capsys, "shadow", "stop", "-c", c, "--json")
    assert code == 0 and out == {"stopped": "3"}
    assert run(capsys, "shadow", "stop", "-c", c)[0] == 2
    assert [e.action for e in store.ledger("cli-model")] == ["promote", "shadow_start", "shadow_stop"]
