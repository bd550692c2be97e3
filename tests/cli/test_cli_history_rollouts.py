"""`retrainer history` shows each rollout's stages with their dates and the guard's looks."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np

from retrainer.cli import main
from retrainer.config import GuardConfig
from retrainer.deployments.rollout.guard import Figures, Pairs, audit_rows, judge

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
        worse = Pairs(np.array([-1.0] * 200 + [0.0] * 800), shadowed=1000)  # 20 points worse on the same requests
        verdict = judge(GuardConfig(), worse, Figures("2", "", ""), Figures("1", "", ""), looks=7)
        s.record_evaluations(name, NOW, audit_rows(r, verdict, NOW))

    assert main(["history", "--config", str(world.config_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (rollout,) = out["rollouts"]
    assert [(st["stage"], st["at"]) for st in rollout["stages"]] == [
        ("staged", (NOW - timedelta(days=3)).isoformat()), ("shadow", (NOW - timedelta(days=3)).isoformat()),
        ("champion", (NOW - timedelta(days=2)).isoformat())]
    (look,) = out["guard"]
    assert look["fired"] is True and look["evidence"]["rollout_id"] == rollout["id"]
    assert look["evidence"]["breached"] == ["paired_difference"]

    assert main(["history", "--config", str(world.config_path)]) == 0
    table = capsys.readouterr().out
    assert "rollouts" in table and "guard looks" in table and "staged" in table and "paired_difference" in table
