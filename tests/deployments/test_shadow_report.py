"""``retrainer shadow report`` from stored comparisons alone: no server running."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from retrainer.cli import main
from retrainer.deployments.rollout.promotion import promote
from retrainer.deployments.rollout.stages import shadow_state, start_shadow
from retrainer.registry import Registry
from retrainer.store import ShadowRecord, Store


@pytest.fixture
def world(tmp_path: Path, tiny_registry):
    uri = tiny_registry(tmp_path, "rep-model", 2)
    cfg = {
        "model": {"name": "rep-model"},
        "store": {"url": "sqlite:///store.db"},
        "mlflow": {"tracking_uri": uri},
        "data": {"source": {"table": "t"}, "features": [{"name": "x1"}]},
        "serving": {"port": 1},  # nothing listens there
    }
    path = tmp_path / "retrainer.yaml"
    path.write_text(yaml.safe_dump(cfg))
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.init()
    registry = Registry(uri, model_name="rep-model")
    promote(registry, store, version="1", expected_champion=None, actor="test", reason="first")
    yield path, store, registry
    store.close()


def test_report_from_stored_rows_without_a_server(world, capsys) -> None:
    path, store, registry = world
    from retrainer.config import load_config

    cfg = load_config(path)
    state = start_shadow(cfg, store, registry, version="2", actor="test", sample=0.25)
    assert state.sample == 0.25
    entry = store.ledger("rep-model")[-1]
    assert entry.details == {"sample": 0.25} and "[sample" not in entry.reason
    assert shadow_state(cfg, store, registry).sample == 0.25  # read back from the details

    now = datetime.now(UTC) - timedelta(minutes=5)
    rows = [ShadowRecord("rep-model", f"r{i}", "1", "2", 1.0, float(i % 4 != 0), now, champion_score=0.7,
                         shadow_score=0.6, latency_ms=5.0 + i, champion_latency_ms=1.0 + i / 10) for i in range(40)]
    rows += [ShadowRecord("rep-model", f"e{i}", "1", "2", 0.0, None, now, latency_ms=2.0, champion_latency_ms=1.0,
                          error="RuntimeError: nope") for i in range(10)]
    store.record_shadow(rows)

    assert main(["shadow", "report", "-c", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["state"] == {"shadow_version": "2", "sample": 0.25, "champion_version": "1"}
    s = report["stored"]["2"]
    assert s["n"] == 50 and s["compared"] == 40 and s["errors"] == 10 and s["error_rate"] == 0.2
    assert s["agreement_rate"] == 0.75 and s["last_error"] == "RuntimeError: nope"
    assert abs(s["score_delta"]["mean"] + 0.1) < 1e-9
    assert s["shadow_latency_ms"]["p50"] == 24.5 and s["champion_latency_ms"]["p99"] is not None
    assert report["live"] is None and any("drops" in n and "live only" in n for n in report["notes"])

    assert main(["shadow", "report", "-c", str(path), "--no-live"]) == 0
    text = capsys.readouterr().out
    for needle in ("agreement rate", "0.7500", "champion latency p50 / p99 ms", "shadow latency p50 / p99 ms",
                   "10 (20.00%)", "drops: live only"):
        assert needle in text, needle
