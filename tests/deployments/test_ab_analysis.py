"""A/B analysis: arms read by test id and arm, variance clustered by unit, the rollout's one rule.

References: scipy's chi-square for the sample-ratio check, the normal-normal update by hand, the
naive (unclustered) standard error to show what clustering changes when a unit sends many requests.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from retrainer.config import ABConfig, DecisionConfig, FeatureSpec, GateConfig
from retrainer.deployments.rollout.ab import arm_for
from retrainer.deployments.rollout.analysis import analyze, decide
from retrainer.deployments.rollout.decision import Prior
from retrainer.stats.paired import clustered_difference
from retrainer.store import LabelRecord, PredictionRecord, Store

NEUTRAL = Prior(0.0, 0.03, "test")
RULE = DecisionConfig()


def arms(rng: np.random.Generator, n_units: int, per_unit: int, p_champ: float, p_chal: float, unit_sd: float = 0.0):
    """(correct, challenger, unit) of ``n_units`` units split 50/50, each sending ``per_unit`` requests;
    ``unit_sd`` spreads each unit's own accuracy (what makes a unit's requests correlated)."""
    challenger = np.repeat(np.arange(n_units) % 2 == 1, per_unit)
    unit = np.repeat(np.array([f"u{i}" for i in range(n_units)], dtype=object), per_unit)
    base = np.where(challenger, p_chal, p_champ)
    own = np.repeat(rng.normal(0, unit_sd, n_units), per_unit)
    correct = (rng.random(challenger.size) < np.clip(base + own, 0, 1)).astype(float)
    return correct, challenger, unit


def test_the_verdict_is_the_normal_update_of_the_prior_with_the_clustered_estimate() -> None:
    correct, chal, unit = arms(np.random.default_rng(1), 2000, 3, 0.75, 0.85)
    d = decide(correct, chal, unit, units=None, split=0.5, srm_alpha=0.001, prior=NEUTRAL, decision=RULE)
    est = clustered_difference(correct, chal, unit)
    assert (d.diff, d.se) == (pytest.approx(est.mean), pytest.approx(est.se))
    w0, w1 = 1 / NEUTRAL.sd**2, 1 / est.se**2
    assert d.posterior["posterior"]["mean"] == pytest.approx((w1 * est.mean) / (w0 + w1))
    assert d.posterior["posterior"]["sd"] == pytest.approx(math.sqrt(1 / (w0 + w1)))
    assert d.verdict == "promote_challenger" and d.posterior["n_labelled"] == 6000


def test_verdict_branches() -> None:
    rng = np.random.default_rng(2)
    worse = decide(*arms(rng, 2000, 3, 0.85, 0.75), units=None, split=0.5, srm_alpha=0.001, prior=NEUTRAL, decision=RULE)
    assert worse.verdict == "keep_champion"
    # Too few labelled predictions in an arm: the prior alone, which decides nothing.
    few = decide(*arms(rng, 20, 1, 0.7, 0.9), units=None, split=0.5, srm_alpha=0.001, prior=NEUTRAL, decision=RULE)
    assert few.verdict == "keep_collecting" and few.diff is None and "the prior alone" in few.reason
    # Undecided at max duration: the posterior mean decides, either way, saying so.
    close = arms(rng, 300, 1, 0.80, 0.81)
    late = decide(*close, units=None, split=0.5, srm_alpha=0.001, prior=NEUTRAL, decision=RULE, at_max_duration=True)
    early = decide(*close, units=None, split=0.5, srm_alpha=0.001, prior=NEUTRAL, decision=RULE)
    assert early.verdict == "keep_collecting"
    mean = late.posterior["posterior_mean"]
    assert late.verdict == ("promote_challenger" if mean > 0 else "keep_champion") and "max duration" in late.reason


def test_srm_matches_scipy_and_blocks_any_verdict() -> None:
    correct, chal, unit = arms(np.random.default_rng(3), 2000, 3, 0.75, 0.85)
    units = (9000, 1400)  # planned 90/10: 1040 expected in the challenger arm
    d = decide(correct, chal, unit, units=units, split=0.1, srm_alpha=0.001, prior=NEUTRAL, decision=RULE,
               at_max_duration=True)
    ref = stats.chisquare(units, f_exp=[0.9 * sum(units), 0.1 * sum(units)]).pvalue
    assert d.srm_p_value == pytest.approx(ref, rel=1e-9)
    assert d.srm_mismatch and d.verdict == "keep_collecting" and "sample-ratio mismatch" in d.reason
    ok = decide(correct, chal, unit, units=(9010, 990), split=0.1, srm_alpha=0.001, prior=NEUTRAL, decision=RULE)
    assert not ok.srm_mismatch and ok.verdict == "promote_challenger"


def test_many_requests_per_unit_widen_the_interval_as_they_should() -> None:
    """40 requests from each of 200 units whose own accuracies differ: the naive standard error
    (requests as independent) is far too small; the clustered one is what the posterior is updated with."""
    correct, chal, unit = arms(np.random.default_rng(4), 200, 40, 0.78, 0.80, unit_sd=0.15)
    naive = math.sqrt(sum(correct[s].var(ddof=1) / s.sum() for s in (chal, ~chal)))
    est = clustered_difference(correct, chal, unit)
    assert est.se > 2 * naive
    d = decide(correct, chal, unit, units=None, split=0.5, srm_alpha=0.001, prior=NEUTRAL, decision=RULE)
    assert d.se == pytest.approx(est.se)
    w0 = 1 / NEUTRAL.sd**2
    assert d.posterior["posterior"]["sd"] == pytest.approx(math.sqrt(1 / (w0 + 1 / est.se**2)))


def _ab_store(tmp_path, *, per_unit: int = 4):
    """A store with an A/B test (units sending ``per_unit`` requests each, challenger clearly more
    accurate), plus predictions of the same versions outside the test, which must not count."""
    specs = [FeatureSpec(name="x1")]
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    store.init()
    start = datetime.now(UTC) - timedelta(days=2)
    test_id = store.start_ab_test("m", champion_version="1", challenger_version="2", split=0.5, salt="s",
                                  config=ABConfig().model_dump(mode="json"), started_at=start)
    rng = np.random.default_rng(3)
    preds, labels, assigns = [], [], []
    for i in range(4000):
        unit = f"u{i // per_unit}"
        arm = arm_for("s", unit, 0.5)
        version = "2" if arm == "challenger" else "1"
        p_right = 0.85 if version == "2" else 0.75
        y = int(rng.integers(0, 2))
        pred = y if rng.random() < p_right else 1 - y
        ts = start + timedelta(seconds=30 * i)
        preds.append(PredictionRecord(f"r{i}", {"x1": 0.0}, float(pred), ts, version, unit, arm, None, test_id))
        labels.append(LabelRecord(f"r{i}", float(y), ts + timedelta(minutes=1)))
        assigns.append((unit, arm))
    for i in range(1000):  # version 2 answering outside the test (e.g. a later direct promotion), all wrong
        ts = start + timedelta(seconds=30 * i + 7)
        preds.append(PredictionRecord(f"o{i}", {"x1": 0.0}, 1.0, ts, "2", None, None, None, None))
        labels.append(LabelRecord(f"o{i}", 0.0, ts + timedelta(minutes=1)))
    store.log_predictions("m", preds, specs)
    store.log_labels(labels)
    store.record_assignments(test_id, assigns)
    return store, store.ab_test(test_id)


def test_analyze_reads_arms_by_test_and_arm_not_by_version(tmp_path) -> None:
    store, test = _ab_store(tmp_path)
    result = analyze(store, test, gate=GateConfig(metric="f1", min_ratio=0.95), prior=NEUTRAL)
    champ, chall = result.arms["champion"], result.arms["challenger"]
    assert champ.n + chall.n == 4000  # the 1000 predictions of version 2 outside the test are not in it
    assert champ.units + chall.units == 1000 and champ.labelled_units + chall.labelled_units == 1000
    assert 0.72 < champ.accuracy < 0.78 and 0.82 < chall.accuracy < 0.88
    assert result.verdict == "promote_challenger" and not result.decision.srm_mismatch
    as_dict = result.to_dict()
    assert as_dict["verdict"] == "promote_challenger" and as_dict["arms"]["challenger"]["version"] == "2"
    assert as_dict["decision"]["posterior"]["posterior_mean"] > 0
    store.close()


def test_analyze_defaults_to_the_challengers_offline_prior(tmp_path, monkeypatch) -> None:
    store, test = _ab_store(tmp_path)
    monkeypatch.setattr(Store, "offline_delta", lambda self, model, version: (0.06, 0.01) if version == "2" else None)
    result = analyze(store, test, gate=GateConfig(), as_of=test.started_at)  # nothing labelled yet
    post = result.decision.posterior
    assert post["prior"]["mean"] == pytest.approx(0.5 * 0.06) and post["posterior_mean"] == pytest.approx(0.03)
    assert result.verdict == "keep_collecting"
    store.close()
