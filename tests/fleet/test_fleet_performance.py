"""The fleet control over performance triggers: their p-values go through Benjamini-Hochberg like
drift's; a quiet fleet at low volume asks for (almost) no retrains; non-statistical fires pass."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from retrainer.config import PolicyConfig
from retrainer.testing import InMemoryWindowSource, labelled_log
from retrainer.triggers.context import ChampionInfo, TriggerContext
from retrainer.triggers.fleet import fleet_control, model_check
from retrainer.triggers.policy import build_policy

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
NOW = T0 + timedelta(days=20)
ACCURACY = [{"type": "performance", "thresholds": {"accuracy": 0.85}, "min_labels": 20, "window": "7d"}]


def exact_log(n: int, correct: int) -> pd.DataFrame:
    """``n`` labelled predictions in the last day, exactly ``correct`` of them right (classes alternate)."""
    ts = pd.Timestamp(NOW) - pd.to_timedelta((np.arange(n) + 1) * 60, unit="s")
    y = (np.arange(n) % 2).astype(float)
    pred = np.where(np.arange(n) < correct, y, 1 - y)
    return pd.DataFrame({"ts": ts, "y_true": y, "y_pred": pred, "score": pred, "labelled_at": ts})


def check(name: str, frame: pd.DataFrame, policy, last_retrain_at: datetime | None = None):
    ctx = TriggerContext(model_name=name, now=NOW, source=InMemoryWindowSource(frame),
                         champion=ChampionInfo("v1", created_at=T0), last_retrain_at=last_retrain_at)
    return model_check(name, policy.check(ctx))


def test_marginal_small_n_performance_fires_are_held_back_and_strong_ones_pass():
    policy = build_policy(ACCURACY)
    rng = np.random.default_rng(5)
    checks = [check(f"quiet{i}", labelled_log(rng, 0.90, end=NOW), policy) for i in range(150)]
    # 40 labels, 30 right: below the cut 31/40, p = P(X <= 30 | 0.90) = 0.005. Fires on its own, marginal.
    checks += [check(f"marginal{i}", exact_log(40, 30), policy) for i in range(5)]
    # 300 labels, 210 right (0.70): p ~ 1e-14.
    checks += [check(f"strong{i}", exact_log(300, 210), policy) for i in range(5)]
    by = {c.model: c for c in checks}
    assert by["marginal0"].should_retrain and by["strong0"].should_retrain
    assert by["marginal0"].pvalue == pytest.approx(stats.binom.cdf(30, 40, 0.90), rel=1e-12)
    assert by["strong0"].pvalue == pytest.approx(stats.binom.cdf(210, 300, 0.90), rel=1e-12)
    summary = fleet_control(checks, rate=0.05)
    assert {f"strong{i}" for i in range(5)} <= set(summary.fired)
    assert {f"marginal{i}" for i in range(5)} <= set(summary.held_back)
    assert not [m for m in summary.fired if m.startswith("quiet")]
    why = by["marginal0"].why
    assert "held back by the fleet control" in why and "performance's test p = 0.00506" in why and "over 160 models" in why
    # The adjusted p-values are statsmodels' Benjamini-Hochberg over every model's p-value.
    p = np.array([c.pvalue for c in checks])
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="fdr_bh")
    np.testing.assert_allclose([c.adjusted_pvalue for c in checks], adjusted, rtol=1e-12)
    assert set(summary.fired) == {c.model for c, r in zip(checks, reject, strict=True) if r and c.should_retrain}


def test_drift_and_performance_combine_by_simes_and_the_why_names_the_test_that_fired():
    from retrainer.triggers.decision import Decision
    from retrainer.triggers.policy import CheckResult

    perf = Decision("performance", True, "fired", "accuracy 0.75 < 0.85", 0.75, 0.85, {"pvalue": 0.004})
    drift = Decision("drift", False, "ok", "no feature drifted", 0.4, 0.05, {"pvalue": 0.4})
    raw = Decision("policy", True, "fired", "1 of 2", 1, 1, {"needed": 1, "counted": ["performance"]})
    c = model_check("m", CheckResult(raw, raw, (drift, perf), ("performance",)))
    assert c.pvalues == {"drift": 0.4, "performance": 0.004} and c.pvalue == pytest.approx(0.008)  # Simes
    quiet = [model_check(f"q{i}", CheckResult(q := Decision("policy", False, "ok", "", 0, 1, {"needed": 1}), q,
                                              (Decision("drift", False, "ok", "", 0.5, 0.05, {"pvalue": 0.5}),)))
             for i in range(99)]
    summary = fleet_control([c, *quiet], rate=0.05)
    assert summary.held_back == ["m"]  # 0.008 x 100 / 1 > 0.05
    assert "performance's test p = 0.004 (model p = 0.008, Simes with drift p = 0.4)" in c.why


def test_a_model_fired_only_by_a_schedule_passes_even_with_a_quiet_performance_pvalue():
    rng = np.random.default_rng(1)
    any_of = build_policy([*ACCURACY, {"type": "schedule", "interval": "30d"}])
    all_of = build_policy([*ACCURACY, {"type": "schedule", "interval": "30d"}], PolicyConfig(mode="all"))
    long_ago = NOW - timedelta(days=60)
    scheduled = check("scheduled", labelled_log(rng, 0.90, end=NOW), any_of, last_retrain_at=long_ago)
    both = check("both", exact_log(40, 30), all_of, last_retrain_at=long_ago)  # needs the marginal test too
    assert scheduled.should_retrain and scheduled.pvalue is not None and scheduled.untested == ["schedule"]
    assert both.should_retrain and both.untested == ["schedule"] and both.needed == 2
    quiet = [check(f"q{i}", labelled_log(rng, 0.90, end=NOW), any_of) for i in range(60)]
    summary = fleet_control([scheduled, both, *quiet], rate=0.05)
    assert "scheduled" in summary.fired and "not a statistical test" in scheduled.why
    assert "not subject to the fleet control" in scheduled.why
    assert summary.held_back == ["both"] and "performance's test p = 0.00506" in both.why


def quiet_fleet(n_models: int, seed: int, trigger: dict) -> tuple[int, int, int]:
    """A quiet fleet: every model at accuracy 0.90 (floor 0.85 + tolerance 0.05), 10-50 labels a day.
    Returns (models judged, fired on their own, fired with the fleet control)."""
    policy = build_policy([trigger])
    rng = np.random.default_rng(seed)
    checks = [check(f"m{i}", labelled_log(rng, 0.90, end=NOW), policy) for i in range(n_models)]
    summary = fleet_control(checks, rate=0.05)
    judged = sum(c.pvalue is not None for c in checks)
    return judged, sum(c.should_retrain for c in checks), len(summary.fired)


@pytest.mark.parametrize("trigger", [
    {"type": "performance", "thresholds": {"accuracy": 0.85}},  # the defaults: the newest 147 labels
    {"type": "performance", "thresholds": {"accuracy": 0.85}, "window": "2d", "min_labels": 20},  # 20-100 labels
], ids=["auto-147-labels", "2d-window-20-to-100-labels"])
def test_a_quiet_low_volume_fleet_of_2000_models_asks_for_at_most_1pct_retrains(trigger):
    judged, own, with_control = quiet_fleet(2000, 22, trigger)
    print(f"{trigger}: {judged} judged; fired on their own {own / 2000:.2%}, with the fleet control "
          f"{with_control / 2000:.2%}")
    assert judged == 2000
    assert with_control <= 20  # <= 1% with the fleet control (expected: 0)
    assert own <= 2000 * 0.01 * 1.8  # each model's own rule holds ~<= 1% (binomial noise over 2000)
    assert with_control <= own


def test_a_policy_that_needs_every_test_carries_the_largest_pvalue_into_the_fleet_control():
    # mode all: the model retrains only if drift AND performance found something, so its p-value is
    # the largest of the two (intersection-union), not Simes' (which answers "either found something").
    from retrainer.triggers.decision import Decision
    from retrainer.triggers.policy import CheckResult

    perf = Decision("performance", True, "fired", "accuracy 0.75 < 0.85", 0.75, 0.85, {"pvalue": 0.004})
    drift = Decision("drift", True, "fired", "x drifted", 0.01, 0.05, {"pvalue": 0.03})
    both = Decision("policy", True, "fired", "2 of 2", 2, 2, {"needed": 2, "counted": ["drift", "performance"]})
    c = model_check("m", CheckResult(both, both, (drift, perf), ("drift", "performance")))
    assert c.tests_needed == 2 and c.pvalue == pytest.approx(0.03)  # Simes would say min(2*0.004, 0.03) = 0.008
    assert c.combination == "the largest: every test needed"
    quiet = [model_check(f"q{i}", CheckResult(q := Decision("policy", False, "ok", "", 0, 2, {"needed": 2}), q,
                                              (Decision("drift", False, "ok", "", 0.5, 0.05, {"pvalue": 0.5}),)))
             for i in range(4)]
    summary = fleet_control([c, *quiet], rate=0.05)
    assert summary.held_back == ["m"]  # 0.03 x 5 models > 0.05 (at Simes' 0.008: 0.04, it would have passed)
    assert "(model p = 0.03, the largest: every test needed)" in c.why
    # The same model under mode any (one fire is enough): Simes.
    anyone = Decision("policy", True, "fired", "2 of 2", 2, 1, {"needed": 1, "counted": ["drift", "performance"]})
    assert model_check("m", CheckResult(anyone, anyone, (drift, perf), ("drift", "performance"))).pvalue == pytest.approx(0.008)
