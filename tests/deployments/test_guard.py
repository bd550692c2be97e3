"""The guard window after a promotion: real SQLite store, real MLflow registry, an injected clock.

A champion whose matured-label error rate (or serving failure rate) breaks during the guard
window is rolled back by compare-and-set with its evidence in the ledger; one that is merely
noisy is not, and 200 simulated quiet windows give no more false rollbacks than alpha allows.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from statsmodels.stats.proportion import proportions_ztest

from retrainer.config import FeatureSpec, GuardConfig, RetrainerConfig
from retrainer.deployments.rollout.guard import (
    Figures,
    ServingFigures,
    dispersion,
    estimate_drop_test,
    guard_rollout,
    guarded_rollout,
    judge,
    margin_test,
)
from retrainer.deployments.rollout.promotion import promote
from retrainer.registry import CHAMPION, Registry
from retrainer.store import Store
from retrainer.store.records import LabelRecord

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)  # the promotion of version 2
FEATURES = [FeatureSpec(name="x")]


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
        "rollout": {"mode": "shadow", "guard": {"window": "7d", "baseline": "7d", **guard}},
    })


def log(store: Store, model: str, version: str, start: datetime, days: float, n: int, error_rate: float,
        rng: np.random.Generator, *, label_delay: timedelta = timedelta(hours=12)) -> None:
    """``n`` predictions of ``version`` spread over ``days`` from ``start``, each wrong with
    probability ``error_rate``; every label arrives ``label_delay`` after its prediction."""
    ts = start + pd.to_timedelta(np.sort(rng.uniform(0, days * 86400, n)), unit="s")
    label = rng.integers(0, 2, n).astype(float)
    wrong = rng.random(n) < error_rate
    pred = np.where(wrong, 1.0 - label, label)
    ids = [f"{version}-{uuid.uuid4().hex}" for _ in range(n)]
    frame = pd.DataFrame({"request_id": ids, "ts": ts.to_pydatetime(), "prediction": pred,
                          "model_version": version, "x": rng.normal(size=n)})
    store.log_prediction_frame(model, frame, FEATURES)
    store.log_labels([LabelRecord(i, float(y), t + label_delay) for i, y, t in zip(ids, label, ts.to_pydatetime())])


def promoted(store: Store, registry: Registry, rng: np.random.Generator, *, old_error: float, n_old: int = 1500):
    """Version 1 champion for a month (its last week logged at ``old_error``), then a rollout that
    promoted version 2 at T0."""
    name = registry.model_name
    promote(registry, store, version="1", expected_champion=None, actor="t", reason="first", at=T0 - timedelta(days=30))
    log(store, name, "1", T0 - timedelta(days=7), 7, n_old, old_error, rng)
    r = store.create_rollout(name, version="2", champion_version="1", mode="shadow", stage="staged",
                             at=T0 - timedelta(days=2), actor="t", reason="staged")
    r = store.transition_rollout(r.id, expected="staged", new="shadow", at=T0 - timedelta(days=2), action="rollout_advance",
                                 actor="t", reason="shadow", decision="advanced")
    assert promote(registry, store, version="2", expected_champion="1", actor="t", reason="shadow passed", at=T0).status == "promoted"
    r = store.transition_rollout(r.id, expected="shadow", new="champion", at=T0, action="rollout_advance", actor="t",
                                 reason="shadow passed", decision="promoted")
    return r


def test_champion_whose_matured_labels_break_is_rolled_back_with_its_evidence(registry, store):
    rng = np.random.default_rng(1)
    name = registry.model_name
    cfg = config(name)
    r = promoted(store, registry, rng, old_error=0.10)
    log(store, name, "2", T0, 3, 900, 0.25, rng)  # 15 points worse than the champion it replaced

    out = guard_rollout(cfg, store, registry, T0 + timedelta(days=3))

    assert out is not None and out.action == "rolled_back" and out.restored == "1"
    assert store.champion(name) == "1" and registry.alias_version(CHAMPION) == "1"
    assert store.rollout(r.id).stage == "rolled_back"
    rows = store.ledger(name)
    assert [(x.action, x.from_version, x.to_version) for x in rows[-2:]] == [("rollback", "2", "1"), ("rollout_rollback", "1", "2")]
    assert rows[-1].at == T0 + timedelta(days=3)
    checks = {c["name"]: c for c in rows[-1].details["evidence"]["guard"]["verdict"]["checks"]}
    realized = checks["realized_error"]
    assert realized["breached"] and realized["judged"] and not checks["serving_errors"]["judged"]
    # The evidence is the statsmodels test on the same counts (margin = the null offset), its z
    # scaled by the day-to-day dispersion.
    base, new = out.verdict.facts["baseline"], out.verdict.facts["champion"]
    z, _ = proportions_ztest([new["wrong"], base["wrong"]], [new["labelled"], base["labelled"]], value=0.02,
                             alternative="larger")
    phi = max(dispersion(new["daily"], base["daily"]), 1.0)
    assert realized["p_value"] == pytest.approx(float(norm.sf(z / np.sqrt(phi))), rel=1e-9)
    assert realized["p_value"] < out.verdict.facts["alpha_per_check"]
    # Labels arrive 12 h late: the champion's last half day is not counted yet (no look-ahead).
    assert 0 < new["labelled"] < new["predictions"] == 900
    # Nothing is guarded any more: the rollout left `champion`.
    assert guard_rollout(cfg, store, registry, T0 + timedelta(days=4)) is None


def test_champion_as_good_as_the_one_it_replaced_is_watched_not_rolled_back(registry, store):
    rng = np.random.default_rng(2)
    name = registry.model_name
    cfg = config(name)
    r = promoted(store, registry, rng, old_error=0.10)
    log(store, name, "2", T0, 3, 900, 0.10, rng)
    rows_before = len(store.ledger(name))

    out = guard_rollout(cfg, store, registry, T0 + timedelta(days=3))

    assert out is not None and out.action == "watching" and not out.verdict.rollback
    assert store.champion(name) == "2" and store.rollout(r.id).stage == "champion"
    noted = store.rollout(r.id)
    assert noted.decision == "guarding" and "no breach" in noted.explanation
    # The baseline is recorded on the first look and read as of the promotion: version 1's labels
    # that arrived after T0 (its last 12 h) are not in it.
    baseline = noted.evidence["guard"]["baseline"]
    assert baseline["version"] == "1" and baseline["as_of"] == T0.isoformat()
    assert 0 < baseline["labelled"] < baseline["predictions"] == 1500
    assert len(store.ledger(name)) == rows_before  # a look that does not move writes no ledger row
    # ... but it is audited like a trigger check: one row per guard check and the verdict.
    audit = {e.trigger: e for e in store.evaluations(name, role="guard")}
    assert set(audit) == {"guard", "guard:realized_error", "guard:estimated_accuracy", "guard:serving_errors",
                          "guard:latency_p99"}
    assert audit["guard"].fired is False and audit["guard:realized_error"].status == "ok"
    assert audit["guard:serving_errors"].status == "insufficient_data"
    assert store.evaluations(name, role="policy") == []  # never mistaken for the policy's rows


def test_guard_watches_only_within_its_window_and_only_the_current_champion(registry, store):
    rng = np.random.default_rng(3)
    name = registry.model_name
    promoted(store, registry, rng, old_error=0.10, n_old=50)
    assert guarded_rollout(config(name), store, T0 + timedelta(days=6, hours=23)) is not None
    assert guarded_rollout(config(name), store, T0 + timedelta(days=7)) is None
    assert guarded_rollout(config(name, enabled=False), store, T0 + timedelta(days=1)) is None
    promote(registry, store, version="3", expected_champion="2", actor="t", reason="by hand", at=T0 + timedelta(days=1))
    assert guarded_rollout(config(name), store, T0 + timedelta(days=2)) is None


def test_too_few_labels_is_not_judged_and_never_rolls_back(registry, store):
    rng = np.random.default_rng(4)
    name = registry.model_name
    promoted(store, registry, rng, old_error=0.10)
    log(store, name, "2", T0, 1, 100, 0.9, rng)  # terrible, but 100 labels < min_labels 200
    out = guard_rollout(config(name), store, registry, T0 + timedelta(days=2))
    assert out is not None and out.action == "watching"
    check = next(c for c in out.verdict.checks if c.name == "realized_error")
    assert not check.judged and "200 needed" in check.reason
    assert store.champion(name) == "2"


class Serving:
    """A serving-outcome source (the service keeps no per-version failure record in the store)."""

    def __init__(self, figures: dict[str, ServingFigures]) -> None:
        self.figures = figures

    def serving_stats(self, model_name, version, start, end):
        return self.figures.get(version)


def test_champion_whose_serving_error_rate_breaks_is_rolled_back(registry, store):
    rng = np.random.default_rng(5)
    name = registry.model_name
    promoted(store, registry, rng, old_error=0.10, n_old=300)
    log(store, name, "2", T0, 1, 300, 0.10, rng)
    serving = Serving({"1": ServingFigures(5000, 10, 4.0), "2": ServingFigures(2000, 90, 4.2)})
    out = guard_rollout(config(name), store, registry, T0 + timedelta(days=2), serving=serving)
    assert out is not None and out.action == "rolled_back" and out.verdict.breached == ["serving_errors"]
    _, p = proportions_ztest([90, 10], [2000, 5000], value=0.01, alternative="larger")
    check = next(c for c in out.verdict.checks if c.name == "serving_errors")
    assert check.p_value == pytest.approx(float(p), rel=1e-9)
    assert store.champion(name) == "1"


def test_latency_is_compared_as_a_ratio_of_the_baseline():
    guard = GuardConfig(min_predictions=100)
    base = Figures("1", "", "", "", serving={"requests": 1000, "failures": 0, "p99_ms": 10.0})
    slow = Figures("2", "", "", "", serving={"requests": 1000, "failures": 0, "p99_ms": 17.5})
    fine = Figures("2", "", "", "", serving={"requests": 1000, "failures": 0, "p99_ms": 16.5})
    assert judge(guard, slow, base, latency_slack_ms=2.0).breached == ["latency_p99"]  # 17.5 > 1.5 x 10 + 2
    assert judge(guard, fine, base, latency_slack_ms=2.0).rollback is False


def test_estimated_accuracy_drop_is_tested_against_the_margin():
    guard = GuardConfig()
    base = Figures("1", "", "", "", predictions=2000, estimated_accuracy=0.90, estimated_se=0.006)
    worse = Figures("2", "", "", "", predictions=2000, estimated_accuracy=0.82, estimated_se=0.008)
    slightly = Figures("2", "", "", "", predictions=2000, estimated_accuracy=0.88, estimated_se=0.008)
    v = judge(guard, worse, base)
    assert v.rollback and v.breached == ["estimated_accuracy"]
    assert judge(guard, slightly, base).rollback is False  # 2 points down, inside the 3-point margin
    # The textbook test of two independent normal estimates, by hand.
    z = (0.90 - 0.82 - 0.03) / np.hypot(0.006, 0.008)
    assert estimate_drop_test(0.90, 0.006, 0.82, 0.008, 0.03) == pytest.approx((z, norm.sf(z)))


@pytest.mark.parametrize(("base", "new", "margin"), [((30, 1000), (60, 1000), 0.02), ((100, 900), (95, 1100), 0.01),
                                                      ((5, 200), (30, 300), 0.05), ((40, 400), (40, 400), 0.0)])
def test_margin_test_equals_statsmodels(base, new, margin):
    z, p = margin_test(*base, *new, margin)
    ref_z, ref_p = proportions_ztest([new[0], base[0]], [new[1], base[1]], value=margin, alternative="larger")
    assert (z, p) == pytest.approx((float(ref_z), float(ref_p)), rel=1e-12)


def quiet_windows(rng: np.random.Generator, guard: GuardConfig, *, shift: float, windows: int = 200, days: int = 7,
                  per_day: int = 400, base_error: float = 0.10, flaky: float = 0.05) -> int:
    """How many of ``windows`` guard windows roll back when the guard looks once a day (cumulative
    figures since the promotion) at a champion whose daily error rate is flaky (uniform within
    +-``flaky``) around ``base_error + shift``; the baseline is a steady week at ``base_error``."""
    rollbacks = 0
    for _ in range(windows):
        base_days = [[per_day, int(rng.binomial(per_day, base_error))] for _ in range(7)]
        base = Figures("1", "", "", "", predictions=7 * per_day, labelled=7 * per_day,
                       wrong=sum(k for _, k in base_days), daily=base_days)
        champion_days: list[list[int]] = []
        for _day in range(days):
            rate = float(np.clip(base_error + shift + rng.uniform(-flaky, flaky), 0, 1))
            champion_days.append([per_day, int(rng.binomial(per_day, rate))])
            n = per_day * len(champion_days)
            champion = Figures("2", "", "", "", predictions=n, labelled=n, wrong=sum(k for _, k in champion_days),
                               daily=list(champion_days))
            if judge(guard, champion, base, looks=days).rollback:
                rollbacks += 1
                break
    return rollbacks


def test_no_false_rollback_beyond_alpha_across_200_quiet_windows():
    guard = GuardConfig(alpha=0.05, error_margin=0.02, min_labels=200)
    false_rollbacks = quiet_windows(np.random.default_rng(20261129), guard, shift=0.0)
    assert false_rollbacks <= 0.05 * 200  # not worse, only flaky: at most what alpha allows
    # The same looks catch a champion truly worse (8 points, beyond the 2-point margin) nearly always.
    caught = quiet_windows(np.random.default_rng(7), guard, shift=0.08)
    assert caught >= 0.95 * 200


def test_a_plain_z_test_would_roll_the_flaky_champion_back_too_often():
    """Why dispersion and looks are corrected: a plain statsmodels z-test at alpha, looked at daily,
    rolls back far more of the same quiet windows than alpha allows."""
    guard = GuardConfig(alpha=0.05, error_margin=0.02)
    rng = np.random.default_rng(20261129)
    rollbacks = 0
    for _ in range(200):
        base_k = int(rng.binomial(7 * 400, 0.10))
        wrong = n = 0
        for _day in range(7):
            wrong += int(rng.binomial(400, 0.10 + rng.uniform(-0.05, 0.05)))
            n += 400
            _, p = proportions_ztest([wrong, base_k], [n, 7 * 400], value=guard.error_margin, alternative="larger")
            if p < guard.alpha:
                rollbacks += 1
                break
    assert rollbacks > 0.05 * 200


def test_dispersion_is_pearson_chi2_over_df():
    days = [[100, 10], [100, 20], [100, 15]]
    p = 45 / 300
    chi2 = sum((k - n * p) ** 2 / (n * p * (1 - p)) for n, k in days)
    assert dispersion(days) == pytest.approx(chi2 / 2)
    assert dispersion([[100, 10]]) == 1.0  # one day: not estimable


def test_a_rollback_is_announced_by_event_and_notification_block(registry, store, monkeypatch):
    import retrainer.tasks.guard as guard_task

    sent: list[tuple] = []
    monkeypatch.setattr(guard_task, "emit", lambda event, model, payload: sent.append((event, model, payload)) or "ev-1")
    monkeypatch.setattr(guard_task, "send_notification",
                        lambda block, *, subject, body: sent.append((block, subject, body)) or True)
    rng = np.random.default_rng(6)
    name = registry.model_name
    cfg = config(name).model_copy(update={"notifications": config(name).notifications.model_copy(update={"block": "slack/ops"})})
    promoted(store, registry, rng, old_error=0.10)
    log(store, name, "2", T0, 3, 900, 0.30, rng)

    out = guard_task.guard_and_rollback(cfg, store, registry, T0 + timedelta(days=3))

    assert out is not None and out.action == "rolled_back"
    (event, model, payload), (block, subject, body) = sent
    assert (event, model, payload["rolled_back"], payload["champion"]) == ("retrainer.rollback.performed", name, "2", "1")
    assert "realized_error" in payload["explanation"] and payload["evidence"]["rollback"] is True
    assert (block, subject) == ("slack/ops", f"retrainer: {name} rolled back") and "from version 2 to 1" in body


def test_rollback_is_compare_and_set_against_the_judged_champion(registry, store, monkeypatch):
    """Someone promotes version 3 while the guard judges version 2: the guard's rollback is
    superseded (ledger row), version 3 stays, the rollout is not marked rolled back."""
    import retrainer.deployments.rollout.guard as guard_module

    rng = np.random.default_rng(8)
    name = registry.model_name
    r = promoted(store, registry, rng, old_error=0.10)
    log(store, name, "2", T0, 3, 900, 0.30, rng)
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
