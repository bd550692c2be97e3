"""What the retrain flow records for cost_benefit: each run's candidate holdout metrics and its
measured duration (read back as the store's retrain history), and the holdout figures stored
with the registered version's reference profile."""

from __future__ import annotations

from datetime import timedelta

import pytest

from retrainer.flows.retrain import retrain
from retrainer.triggers import ChampionInfo, TriggerContext
from retrainer.triggers.cost_benefit import CostBenefitTrigger

from flow_world import NOW
from .test_retrain_flow import DUMMY


@pytest.mark.slow
def test_runs_record_holdout_metrics_and_duration_and_the_profile_keeps_the_holdout(make_world):
    world = make_world()
    first = retrain(str(world.config_path), force=True, now=NOW)
    world.reconfigure(estimator=DUMMY)
    later = NOW + timedelta(days=1)
    second = retrain(str(world.config_path), reasons=["drift"], now=later)
    assert (first["status"], second["status"]) == ("success", "no_improvement")
    store, name = world.store(), world.cfg.model.name

    history = store.retrain_history(name, as_of=later)
    assert [r.version for r in history] == [None, "1"]  # most recent first; the rejected run counts
    assert [r.at for r in history] == [later, NOW]
    assert history[0].metrics == second["candidate_metrics"] and history[1].metrics == first["candidate_metrics"]
    assert all(r.duration_s is not None and r.duration_s > 0 for r in history)
    # Clamped: at the first run's instant the second is the future.
    assert [r.version for r in store.retrain_history(name, as_of=NOW)] == ["1"]
    assert store.retrain_history(name, as_of=NOW - timedelta(seconds=1)) == []

    profile = store.reference_profile(name, "1")
    assert profile["holdout_metrics"] == first["candidate_metrics"]

    ctx = TriggerContext(name, later, source=store, champion=ChampionInfo("1"), reference=profile)
    fresh = CostBenefitTrigger({"min_samples": 1})._fresh(ctx)
    expected_accuracy = (first["candidate_metrics"]["accuracy"] + second["candidate_metrics"]["accuracy"]) / 2
    assert fresh[0] == expected_accuracy and fresh[1]["source"] == "retrain_runs"  # (value, facts)
