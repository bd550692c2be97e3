"""`retrainer history` shows each rollout's stages with their dates and the guard's looks."""

from __future__ import annotations

import json
from datetime import timedelta

from retrainer.cli import main
from retrainer.config import GuardConfig
from retrainer.deployments.rollout.guard import Figures, audit_rows, judge

from flow_world import NOW


def test_history_lists_rollout_stages_and_guard_looks(make_world, capsys):
    world = make_world()
    name = world.cfg.model.name
    with world.store() as s:
        r = s.create_rollout(name, version="2", champion_version="1", mode="shadow", stage="staged",
                             at=NOW - timedelta(days=3), actor="t", reason="staged")
        r = s.transition_rollout(r.id, expected="staged", new="shadow", at=NOW - timedelta(days=3), actor="t",
                                 action="rollout_advance", reason="shadow", decision="advanced")
        r = s.transition_rollout(r.id, expected="shadow", new="champion", at=NOW - timedelta(days=2), actor="t",
                                 action="rollout_advance", reason="shadow passed", decision="promoted")
        base = Figures("1", "", "", "", predictions=2000, labelled=2000, wrong=200, daily=[[1000, 100], [1000, 100]])
        bad = Figures("2", "", "", "", predictions=1000, labelled=1000, wrong=300, daily=[[500, 150], [500, 150]])
        s.record_evaluations(name, NOW, audit_rows(r, judge(GuardConfig(), bad, base, looks=7), NOW))

    assert main(["history", "--config", str(world.config_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (rollout,) = out["rollouts"]
    assert [(st["stage"], st["at"]) for st in rollout["stages"]] == [
        ("staged", (NOW - timedelta(days=3)).isoformat()), ("shadow", (NOW - timedelta(days=3)).isoformat()),
        ("champion", (NOW - timedelta(days=2)).isoformat())]
    (look,) = out["guard"]
    assert look["fired"] is True and look["evidence"]["rollout_id"] == rollout["id"]
    assert look["evidence"]["breached"] == ["realized_error"]

    assert main(["history", "--config", str(world.config_path)]) == 0
    table = capsys.readouterr().out
    assert "rollouts" in table and "guard looks" in table and "staged" in table and "realized_error" in table
