"""The guard window after a promotion: real SQLite store, real MLflow registry, an injected clock.

The replaced champion answers in shadow for the window (its ``shadow_start`` row marked as the
guard's, stopped when the window ends or on a rollback); the new champion is judged on the
labelled pairs of the same requests by the anytime-valid bound of ``guard_sequence``. A champion
worse beyond the margin is rolled back by compare-and-set with its evidence in the ledger; one at
the margin, looked at every day, is rolled back no more often than alpha allows.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from statsmodels.stats.proportion import proportions_ztest

from retrainer.config import GuardConfig, RetrainerConfig
from retrainer.deployments.rollout.guard import (
    Figures,
    Pairs,
    ServingFigures,
    ensure_guard_shadow,
    guard_rollout,
    guarded_rollout,
    judge,
    margin_test,
    release_guard_shadow,
)
from retrainer.deployments.rollout.promotion import promote
from retrainer.deployments.rollout.stages import guard_shadow_rollout, shadow_state
from retrainer.registry import CHAMPION, Registry
from retrainer.stats.sequential import guard_sequence
from retrainer.store import Store
from retrainer.testing.shadow import ShadowWorld

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)  # the promotion of version 2


@pytest.fixture(scope="module")
def mlflow_dir(new_mlflow_dir):
    return new_mlflow_dir("mlflow-guard")


@pytest.fixture
def registry(mlflow_dir, tiny_registry):
    name = f"g-{uuid.uuid4().hex[:8]}"
    return Registry(tiny_registry(mlflow_dir, name, 3), model_name=name)


@pytest.fixture
def store(tmp_path):
    with Store.open(f"sqlite:///{tmp_path / 'retrainer.db'}") as s:
        s.init()
        yield s


def config(name: str, **guard) -> RetrainerConfig:
    return RetrainerConfig.model_validate({
        "model": {"name": name}, "data": {"source": {"table": "t"}, "features": [{"name": "x"}]},
        "rollout": {"mode": "shadow", "guard": {"window": "7d", **guard}},
    })


def promoted(store: Store, registry: Registry):
    """Version 1 champion for a month, then a rollout that promoted version 2 at T0."""
    name = registry.model_name
    promote(registry, store, version="1", expected_champion=None, actor="t", reason="first", at=T0 - timedelta(days=30))
    r = store.create_rollout(name, version="2", champion_version="1", mode="shadow", stage="staged",
                             at=T0 - timedelta(days=2), actor="t", reason="staged")
    r = store.transition_rollout(r.id, expected="staged", new="shadow", at=T0 - timedelta(days=2), action="rollout_advance",
                                 actor="t", reason="shadow", decision="advanced")
    assert promote(registry, store, version="2", expected_champion="1", actor="t", reason="shadow passed", at=T0).status == "promoted"
    return store.transition_rollout(r.id, expected="shadow", new="champion", at=T0, action="rollout_advance", actor="t",
                                    reason="shadow passed", decision="promoted")


def guard_traffic(store: Store, registry: Registry, seed: int, *, days: int, per_day: int, new_acc: float,
                  old_acc: float, delay: timedelta = timedelta(hours=12)) -> ShadowWorld:
    """``days`` of requests answered by the new champion (2) with the replaced one (1) in shadow."""
    w = ShadowWorld(store, registry.model_name, "2", "1", np.random.default_rng(seed), label_delay=delay)
    for d in range(days):
        w.day(T0 + timedelta(days=d), per_day, champion_acc=new_acc, challenger_acc=old_acc)
    return w


def test_the_replaced_champion_shadows_for_the_window_then_stops(registry, store):
    name = registry.model_name
    cfg = config(name)
    r = promoted(store, registry)
    assert ensure_guard_shadow(cfg, store, r, now=T0) is True
    assert ensure_guard_shadow(cfg, store, r, now=T0 + timedelta(hours=1)) is False  # once
    assert guard_shadow_rollout(cfg, store) == r.id and shadow_state(cfg, store, registry).version == "1"
    starts = [e for e in store.ledger(name) if e.action == "shadow_start"]
    assert (starts[-1].from_version, starts[-1].to_version) == ("2", "1")
    assert release_guard_shadow(cfg, store, registry, T0 + timedelta(days=6)) is False  # still guarded
    assert release_guard_shadow(cfg, store, registry, T0 + timedelta(days=7)) is True  # window over
    assert shadow_state(cfg, store, registry).version is None and guard_shadow_rollout(cfg, store) is None


def test_champion_worse_on_the_same_requests_is_rolled_back_with_its_evidence(registry, store):
    name = registry.model_name
    cfg = config(name)
    r = promoted(store, registry)
    w = guard_traffic(store, registry, 1, days=3, per_day=300, new_acc=0.72, old_acc=0.88)
    w.deliver(T0 + timedelta(days=3))

    out = guard_rollout(cfg, store, registry, T0 + timedelta(days=3))

    assert out is not None and out.action == "rolled_back" and out.restored == "1"
    assert store.champion(name) == "1" and registry.alias_version(CHAMPION) == "1"
    assert store.rollout(r.id).stage == "rolled_back"
    rows = store.ledger(name)
    assert [(x.action, x.from_version, x.to_version) for x in rows[-3:]] == [
        ("rollback", "2", "1"), ("rollout_rollback", "1", "2"), ("shadow_stop", "1", "1")]
    checks = {c["name"]: c for c in rows[-2].details["evidence"]["guard"]["verdict"]["checks"]}
    paired = checks["paired_difference"]
    assert paired["breached"] and paired["judged"] and not checks["serving_errors"]["judged"]
    # The evidence is guard_sequence on the same pairs.
    facts = out.verdict.facts
    assert 0 < facts["labelled_pairs"] < facts["shadowed"] == 900  # the last half day's labels are not in yet
    assert paired["bound"] < -cfg.rollout.guard.error_margin and paired["champion"] < -0.1


def test_champion_as_good_as_the_one_it_replaced_is_watched_not_rolled_back(registry, store):
    name = registry.model_name
    cfg = config(name)
    r = promoted(store, registry)
    w = guard_traffic(store, registry, 2, days=3, per_day=300, new_acc=0.85, old_acc=0.85)
    w.deliver(T0 + timedelta(days=3))
    rows_before = len(store.ledger(name))

    out = guard_rollout(cfg, store, registry, T0 + timedelta(days=3))

    assert out is not None and out.action == "watching" and not out.verdict.rollback
    noted = store.rollout(r.id)
    assert store.champion(name) == "2" and noted.stage == "champion"
    assert noted.decision == "guarding" and "no breach" in noted.explanation
    assert len(store.ledger(name)) == rows_before + 1  # the guard's shadow_start; a look writes no ledger row
    audit = {e.trigger: e for e in store.evaluations(name, role="guard")}
    assert set(audit) == {"guard", "guard:paired_difference", "guard:serving_errors", "guard:latency_p99"}
    assert audit["guard"].fired is False and audit["guard:paired_difference"].status == "ok"
    assert audit["guard:serving_errors"].status == "insufficient_data"
    assert store.evaluations(name, role="policy") == []  # never mistaken for the policy's rows


def test_guard_watches_only_within_its_window_and_only_the_current_champion(registry, store):
    name = registry.model_name
    promoted(store, registry)
    assert guarded_rollout(config(name), store, T0 + timedelta(days=6, hours=23)) is not None
    assert guarded_rollout(config(name), store, T0 + timedelta(days=7)) is None
    assert guarded_rollout(config(name, enabled=False), store, T0 + timedelta(days=1)) is None
    promote(registry, store, version="3", expected_champion="2", actor="t", reason="by hand", at=T0 + timedelta(days=1))
    assert guarded_rollout(config(name), store, T0 + timedelta(days=2)) is None


def test_no_label_yet_is_not_judged_and_never_rolls_back(registry, store):
    name = registry.model_name
    promoted(store, registry)
    guard_traffic(store, registry, 4, days=1, per_day=300, new_acc=0.1, old_acc=0.9, delay=timedelta(days=3))
    out = guard_rollout(config(name), store, registry, T0 + timedelta(days=1))
    assert out is not None and out.action == "watching"
    check = next(c for c in out.verdict.checks if c.name == "paired_difference")
    assert not check.judged and "no matured label" in check.reason
    assert store.champion(name) == "2"


class Serving:
    """A serving-outcome source (the service keeps no per-version failure record in the store)."""

    def __init__(self, figures: dict[str, ServingFigures]) -> None:
        self.figures = figures

    def serving_stats(self, model_name, version, start, end):
        return self.figures.get(version)


def test_champion_whose_serving_error_rate_breaks_is_rolled_back(registry, store):
    name = registry.model_name
    promoted(store, registry)
    serving = Serving({"1": ServingFigures(5000, 10, 4.0), "2": ServingFigures(2000, 90, 4.2)})
    out = guard_rollout(config(name), store, registry, T0 + timedelta(days=2), serving=serving)
    assert out is not None and out.action == "rolled_back" and out.verdict.breached == ["serving_errors"]
    _, p = proportions_ztest([90, 10], [2000, 5000], value=0.01, alternative="larger")
    check = next(c for c in out.verdict.checks if c.name == "serving_errors")
    assert check.p_value == pytest.approx(float(p), rel=1e-9)
    assert store.champion(name) == "1"


def test_latency_is_compared_as_a_ratio_of_the_baseline():
    guard = GuardConfig(min_predictions=100)
    none = Pairs(np.zeros(0), 0)
    base = Figures("1", "", "", serving={"requests": 1000, "failures": 0, "p99_ms": 10.0})
    slow = Figures("2", "", "", serving={"requests": 1000, "failures": 0, "p99_ms": 17.5})
    fine = Figures("2", "", "", serving={"requests": 1000, "failures": 0, "p99_ms": 16.5})
    assert judge(guard, none, slow, base, latency_slack_ms=2.0).breached == ["latency_p99"]  # 17.5 > 1.5 x 10 + 2
    assert judge(guard, none, fine, base, latency_slack_ms=2.0).rollback is False


@pytest.mark.parametrize(("base", "new", "margin"), [((30, 1000), (60, 1000), 0.02), ((100, 900), (95, 1100), 0.01)])
def test_margin_test_equals_statsmodels(base, new, margin):
    z, p = margin_test(*base, *new, margin)
    ref_z, ref_p = proportions_ztest([new[0], base[0]], [new[1], base[1]], value=margin, alternative="larger")
    assert (z, p) == pytest.approx((float(ref_z), float(ref_p)), rel=1e-12)


def windows(rng: np.random.Generator, guard: GuardConfig, *, drop: float, runs: int = 100, days: int = 7,
            per_day: int = 400, old_acc: float = 0.90) -> int:
    """How many guard windows roll back when the guard looks every day at the labelled pairs so far,
    the new champion ``drop`` less accurate than the replaced one on the same requests. The two
    models agree on most requests (they are two versions of one model): the new one flips a right
    answer to wrong with probability q and a wrong one to right with probability 0.3."""
    q = (old_acc * 1.0 + (1 - old_acc) * 0.3 - (old_acc - drop)) / old_acc
    rollbacks = 0
    for _ in range(runs):
        old = rng.random(days * per_day) < old_acc
        new = np.where(old, rng.random(old.size) >= q, rng.random(old.size) < 0.3)
        diffs = new.astype(float) - old
        for day in range(1, days + 1):
            pairs = Pairs(diffs[: day * per_day], day * per_day)
            if judge(guard, pairs, Figures("2", "", ""), Figures("1", "", ""), looks=days).rollback:
                rollbacks += 1
                break
    return rollbacks


def test_daily_looks_at_a_champion_exactly_at_the_margin_roll_back_at_most_alpha():
    guard = GuardConfig(alpha=0.05, error_margin=0.02)
    false_rollbacks = windows(np.random.default_rng(20261129), guard, drop=0.02)
    assert false_rollbacks <= 0.05 * 100 + 2 * np.sqrt(0.05 * 0.95 * 100)
    # The same looks catch a champion 5 points worse than the replaced one nearly always.
    caught = windows(np.random.default_rng(7), guard, drop=0.05)
    assert caught >= 90


def test_the_paired_check_is_guard_sequence_on_the_pairs():
    diffs = np.array([-1.0] * 30 + [0.0] * 200 + [1.0] * 5)
    check = next(c for c in judge(GuardConfig(), Pairs(diffs, 235), Figures("2", "", ""), Figures("1", "", "")).checks
                 if c.name == "paired_difference")
    ref = guard_sequence(diffs, 0.02, 0.05)
    assert (check.breached, check.bound, check.champion) == (ref.reject, pytest.approx(ref.bound), pytest.approx(diffs.mean()))


def test_a_rollback_is_announced_by_event_and_notification_block(registry, store, monkeypatch):
    import retrainer.tasks.guard as guard_task

    sent: list[tuple] = []
    monkeypatch.setattr(guard_task, "emit", lambda event, model, payload: sent.append((event, model, payload)) or "ev-1")
    monkeypatch.setattr(guard_task, "send_notification",
                        lambda block, *, subject, body: sent.append((block, subject, body)) or True)
    name = registry.model_name
    cfg = config(name).model_copy(update={"notifications": config(name).notifications.model_copy(update={"block": "slack/ops"})})
    promoted(store, registry)
    guard_traffic(store, registry, 6, days=3, per_day=300, new_acc=0.6, old_acc=0.9).deliver(T0 + timedelta(days=3))

    out = guard_task.guard_and_rollback(cfg, store, registry, T0 + timedelta(days=3))

    assert out is not None and out.action == "rolled_back"
    (event, model, payload), (block, subject, body) = sent
    assert (event, model, payload["rolled_back"], payload["champion"]) == ("retrainer.rollback.performed", name, "2", "1")
    assert "paired_difference" in payload["explanation"] and payload["evidence"]["rollback"] is True
    assert (block, subject) == ("slack/ops", f"retrainer: {name} rolled back") and "from version 2 to 1" in body


def test_rollback_is_compare_and_set_against_the_judged_champion(registry, store, monkeypatch):
    """Someone promotes version 3 while the guard judges version 2: the guard's rollback is
    superseded (ledger row), version 3 stays, the rollout is not marked rolled back."""
    import retrainer.deployments.rollout.guard as guard_module

    name = registry.model_name
    r = promoted(store, registry)
    guard_traffic(store, registry, 8, days=3, per_day=300, new_acc=0.6, old_acc=0.9).deliver(T0 + timedelta(days=3))
    judged = guard_module.evaluate

    def racing(*args, **kwargs):
        out = judged(*args, **kwargs)
        promote(registry, store, version="3", expected_champion="2", actor="someone", reason="meanwhile",
                at=T0 + timedelta(days=3))
        return out

    monkeypatch.setattr(guard_module, "evaluate", racing)
    out = guard_rollout(config(name), store, registry, T0 + timedelta(days=3))
    assert out is not None and out.action == "superseded" and out.verdict.rollback and out.restored == "3"
    assert store.champion(name) == "3" and store.rollout(r.id).stage == "champion"
    assert store.ledger(name)[-1].action == "superseded"
