"""``retrainer check`` and the monitor's check read the champion through ``resolve_champion``: the
store's pointer is the truth, and an MLflow alias that lags behind it is repaired on the way."""

from __future__ import annotations

import json

import pytest

from retrainer.cli import main
from retrainer.flows.monitor import check_model
from retrainer.registry import CHAMPION

from flow_world import NOW

pytestmark = pytest.mark.usefixtures("prefect_harness")  # the retrain flow runs on the session's harness

AGE = [{"type": "model_age", "max_age": "30d"}]


def test_check_judges_the_stores_champion_and_repairs_a_missing_alias(make_world, capsys):
    world = make_world(triggers=AGE)
    assert main(["retrain", "--config", str(world.config_path), "--force", "--at", NOW.isoformat(), "--json"]) == 0
    capsys.readouterr()
    registry = world.registry()
    with world.store() as store:
        assert store.champion(world.cfg.model.name) == "1"

    # The alias is gone (a failed alias move, a hand edit in the MLflow UI): the store still says 1.
    assert registry.delete_alias(CHAMPION)
    assert main(["check", "--config", str(world.config_path), "--at", NOW.isoformat(), "--no-audit", "--json"]) == 0
    age = json.loads(capsys.readouterr().out)["checks"]["model_age"]
    assert age["status"] == "ok" and age["evidence"]["version"] == "1"
    assert registry.alias_version(CHAMPION) == "1"

    # The monitor flow's check answers the same way.
    assert registry.delete_alias(CHAMPION)
    out = check_model(world.cfg, now=NOW)
    assert out["checks"]["model_age"]["evidence"]["version"] == "1"
    assert registry.alias_version(CHAMPION) == "1"
