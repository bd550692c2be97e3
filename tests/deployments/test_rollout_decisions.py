"""The one decision rule through ``advance``: a real SQLite store, a real (tiny) MLflow registry,
simulated shadow traffic (tests/deployments/shadow_world.py) with labels days late, one look a day.

A better challenger is promoted, a worse one rejected, a broken one (agreement below the floor)
rejected by the guardrail, an undecided one decided at ``max_duration`` by its posterior mean
(never rejected because time ran out); at 200 and at 50 requests a day.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from retrainer.config import RetrainerConfig
from retrainer.deployments.rollout.advance import admit_challenger, advance
from retrainer.deployments.rollout.promotion import promote
from retrainer.deployments.rollout.stages import shadow_state
from retrainer.registry import Registry
from retrainer.store import Store
from retrainer.testing.shadow import ShadowWorld, record_offline_delta

T0 = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def mlflow_dir(new_mlflow_dir):
    return new_mlflow_dir("mlflow-decisions")


@pytest.fixture
def registry(mlflow_dir, tiny_registry):
    name = f"d-{uuid.uuid4().hex[:8]}"
    return Registry(tiny_registry(mlflow_dir, name, 3), model_name=name)


def config(name: str, db: str, **rollout) -> RetrainerConfig:
    return RetrainerConfig.model_validate({
        "model": {"name": name}, "store": {"url": db},
        "data": {"source": {"table": "t"}, "features": [{"name": "x"}]},
        "rollout": {"mode": "auto", "shadow": {"duration": "1d", "min_comparisons": 100},
                    "guard": {"enabled": False}, **rollout},
    })


def offline(store: Store, registry: Registry, delta: float | None, se: float = 0.02) -> None:
    """The challenger's paired holdout difference, recorded as the retrain flow records it."""
    if delta is not None:
        record_offline_delta(store, registry.model_name, "2", delta, se, at=T0 - timedelta(hours=1))


def run(cfg, store, registry, world: ShadowWorld, *, days: int, per_day: int, champion_acc: float,
        challenger_acc: float, **kw):
    """One look a day (at the end of it) until the rollout leaves shadow; the steps taken."""
    promote(registry, store, version="1", expected_champion=None, actor="t", reason="first", at=T0 - timedelta(days=30))  # type: ignore[arg-type]
    step = admit_challenger(cfg, store, registry, version="2", now=T0)
    assert (step.action, step.stage) == ("started", "shadow")
    steps = []
    for d in range(days):
        day = T0 + timedelta(days=d)
        world.day(day, per_day, champion_acc=champion_acc, challenger_acc=challenger_acc, **kw)
        end = day + timedelta(days=1)
        world.deliver(end)
        step = advance(cfg, store, registry, end)
        steps.append(step)
        if step.action != "waiting":
            break
    return steps


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'retrainer.db'}") as s:
        s.init()
        yield s


def world_for(store: Store, registry: Registry, seed: int) -> ShadowWorld:
    w = ShadowWorld(store, registry.model_name, "1", "2", np.random.default_rng(seed))
    w.calibrations()
    return w


def test_a_better_challenger_is_promoted_within_ten_days_at_200_a_day_labels_3_days_late(registry, store, tmp_path):
    offline(store, registry, 0.08)
    cfg = config(registry.model_name, str(store.engine.url))
    steps = run(cfg, store, registry, world_for(store, registry, 1), days=10, per_day=200,
                champion_acc=0.75, challenger_acc=0.82)
    last = steps[-1]
    assert (last.action, last.stage_before, last.stage) == ("promoted", "shadow", "champion"), last.explanation
    assert len(steps) <= 10 and store.champion(registry.model_name) == "2"
    # Nothing is judged before a label matured: the first three looks have no labelled pair.
    assert all(s.evidence["n_labelled"] == 0 for s in steps[:3])
    assert last.evidence["n_labelled"] > 0 and last.evidence["n_unlabelled"] > 0
    # The ledger row of the move carries the posterior the decision was made on.
    row = [e for e in store.ledger(registry.model_name) if e.action == "rollout_advance"][-1]
    ev = row.details["evidence"]
    assert ev["posterior_mean"] == pytest.approx(ev["posterior"]["mean"]) and ev["posterior_mean"] > 0
    lo, hi = ev["posterior"]["interval"]
    assert lo < ev["posterior_mean"] < hi and ev["posterior"]["p_worse_than_margin"] <= 0.05
    assert ev["posterior"]["expected_loss"] <= cfg.rollout.decision.max_expected_loss
    assert [t["stage"] for t in ev["trail"]] == ["shadow"] * len(steps)  # one entry a day
    assert shadow_state(cfg, store, registry).version is None  # the challenger's shadow stopped
    # `retrainer rollout status --json` shows it.
    from retrainer.cli import app

    cfg_path = tmp_path / "retrainer.yaml"
    cfg_path.write_text(json.dumps(cfg.model_dump(mode="json")))
    out = CliRunner().invoke(app, ["rollout", "status", "--config", str(cfg_path), "--json"])
    assert out.exit_code == 0, out.output
    [r] = json.loads(out.output)["rollouts"]
    assert r["posterior"]["mean"] == pytest.approx(ev["posterior_mean"])
    assert r["posterior"]["n_labelled"] == last.evidence["n_labelled"] and len(r["trail"]) == len(steps)
    table = CliRunner().invoke(app, ["rollout", "status", "--config", str(cfg_path)])
    assert table.exit_code == 0 and "delta" in table.output  # the posterior column (wrapped at 80 columns)


def test_a_worse_challenger_is_rejected_although_it_won_offline(registry, store):
    offline(store, registry, 0.05)
    cfg = config(registry.model_name, str(store.engine.url))
    steps = run(cfg, store, registry, world_for(store, registry, 2), days=14, per_day=200,
                champion_acc=0.80, challenger_acc=0.70)
    last = steps[-1]
    assert (last.action, last.stage) == ("rejected", "rejected"), last.explanation
    assert last.evidence["posterior"]["p_worse"] >= 0.95 and last.evidence["n_labelled"] > 0
    assert store.champion(registry.model_name) == "1"


def test_a_broken_challenger_is_rejected_by_the_agreement_floor(registry, store):
    offline(store, registry, 0.10)  # whatever it won offline
    cfg = config(registry.model_name, str(store.engine.url))
    steps = run(cfg, store, registry, world_for(store, registry, 3), days=3, per_day=200,
                champion_acc=0.80, challenger_acc=0.80, invert_challenger=True)
    last = steps[0]  # rejected at the first look: no label needed to see it is broken
    assert (last.action, last.stage) == ("rejected", "rejected"), last.explanation
    assert "agreement_floor" in last.explanation
    floor = next(c for c in last.evidence["checks"] if c["name"] == "agreement_floor")
    assert not floor["passed"] and floor["value"] < 0.5


def test_low_agreement_above_the_floor_is_no_reason_to_reject(registry, store):
    """A better model after drift disagrees with a stale champion: ~35% disagreement is not a verdict."""
    offline(store, registry, 0.10)
    cfg = config(registry.model_name, str(store.engine.url))
    steps = run(cfg, store, registry, world_for(store, registry, 4), days=10, per_day=200,
                champion_acc=0.62, challenger_acc=0.85)
    agreement = next(c for c in steps[0].evidence["checks"] if c["name"] == "agreement_floor")["value"]
    assert agreement < 0.8 and steps[-1].action == "promoted", steps[-1].explanation


def test_at_max_duration_the_posterior_mean_decides_never_the_clock_alone(registry, store):
    offline(store, registry, None)  # no offline record: the neutral prior
    cfg = config(registry.model_name, str(store.engine.url), decision={"max_duration": "6d"})
    steps = run(cfg, store, registry, world_for(store, registry, 5), days=8, per_day=50,
                champion_acc=0.78, challenger_acc=0.79)
    assert [s.action for s in steps[:5]] == ["waiting"] * 5  # undecided before max_duration
    last = steps[5]
    assert last.action in ("promoted", "rejected")
    mean = last.evidence["posterior_mean"]
    assert (last.action == "promoted") == (mean > 0), (mean, last.explanation)
    assert steps[4].waiting_for and "posterior mean decides" in steps[4].waiting_for[0]


@pytest.mark.parametrize("seed", [11, 12])
def test_low_volume_better_challenger_is_promoted_and_never_rejected(registry, store, seed):
    offline(store, registry, 0.08)
    cfg = config(registry.model_name, str(store.engine.url))
    steps = run(cfg, store, registry, world_for(store, registry, seed), days=14, per_day=50,
                champion_acc=0.72, challenger_acc=0.82)
    assert steps[-1].action == "promoted", [s.explanation for s in steps[-2:]]


def test_low_volume_worse_challenger_is_not_promoted(registry, store):
    offline(store, registry, 0.02)
    cfg = config(registry.model_name, str(store.engine.url))
    steps = run(cfg, store, registry, world_for(store, registry, 14), days=16, per_day=50,
                champion_acc=0.82, challenger_acc=0.70)
    assert steps[-1].action == "rejected", steps[-1].explanation
    # Not before rollout.decision.min_labelled (500) labelled pairs: 50 a day, 3 days late.
    assert steps[-1].evidence["n_labelled"] >= 500 and len(steps) >= 13
    assert store.champion(registry.model_name) == "1"


def test_without_calibration_maps_the_labelled_pairs_alone_decide(registry, store):
    offline(store, registry, 0.08)
    cfg = config(registry.model_name, str(store.engine.url))
    w = ShadowWorld(store, registry.model_name, "1", "2", np.random.default_rng(21))  # no profiles saved
    steps = run(cfg, store, registry, w, days=10, per_day=200, champion_acc=0.75, challenger_acc=0.85)
    assert all(s.evidence["n_unlabelled"] == 0 for s in steps)
    assert "labelled pairs only" in steps[-1].evidence["facts"]["label_free"]
    assert steps[-1].action == "promoted", steps[-1].explanation


def test_auto_mode_runs_an_ab_test_when_predictions_change_outcomes(registry, store):
    offline(store, registry, 0.05)
    cfg = config(registry.model_name, str(store.engine.url), outcomes_depend_on_predictions=True,
                 ab={"split": 0.5, "salt": "s"})
    promote(registry, store, version="1", expected_champion=None, actor="t", reason="first", at=T0 - timedelta(days=1))
    step = admit_challenger(cfg, store, registry, version="2", now=T0)
    assert (step.action, step.stage) == ("started", "ab") and store.active_ab_test(registry.model_name) is not None
    waiting = advance(cfg, store, registry, T0 + timedelta(hours=1))
    assert waiting.action == "waiting" and waiting.evidence["posterior"]["mean"] == pytest.approx(0.5 * 0.05)


def test_a_promotion_starts_the_guard_window_and_the_next_rollout_waits_for_it(tmp_path):
    """After a promotion the replaced champion shadows the new one for guard.window; a challenger
    staged meanwhile starts when the window ends (one change at a time), and the guard's shadow stops."""
    from retrainer.testing.shadow import AliasRegistry

    registry = AliasRegistry("m")
    with Store.open(f"sqlite:///{tmp_path / 'g.db'}") as store:
        store.init()
        cfg = config("m", str(store.engine.url), guard={"window": "3d"}, decision={"min_labelled": 100})
        record_offline_delta(store, "m", "2", 0.08, 0.02, at=T0 - timedelta(hours=1))
        w = ShadowWorld(store, "m", "1", "2", np.random.default_rng(31), label_delay=timedelta(hours=1))
        w.calibrations()
        steps = run(cfg, store, registry, w, days=5, per_day=300, champion_acc=0.70, challenger_acc=0.85)
        promoted_at = T0 + timedelta(days=len(steps))
        assert steps[-1].action == "promoted" and store.champion("m") == "2"
        assert shadow_state(cfg, store, registry).version == "1"  # the replaced champion, in shadow
        waiting = admit_challenger(cfg, store, registry, version="3", now=promoted_at + timedelta(hours=1))
        assert (waiting.action, waiting.stage) == ("waiting", "staged") and "guard window" in waiting.explanation
        assert shadow_state(cfg, store, registry).version == "1"
        step = advance(cfg, store, registry, promoted_at + timedelta(days=3))  # the window is over
        assert (step.action, step.stage, step.version) == ("started", "shadow", "3")
        assert shadow_state(cfg, store, registry).version == "3"
        starts = [(e.action, e.to_version) for e in store.ledger("m") if e.action.startswith("shadow_")]
        assert starts[-3:] == [("shadow_start", "1"), ("shadow_stop", "1"), ("shadow_start", "3")]
