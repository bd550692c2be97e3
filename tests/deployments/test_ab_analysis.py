"""A/B analysis against independent references (statsmodels, scipy) and by simulation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from retrainer.config import ABConfig, FeatureSpec, GateConfig
from retrainer.deployments.rollout.ab import arm_for
from retrainer.deployments.rollout.analysis import analyze, daily_looks, decide
from retrainer.store import LabelRecord, PredictionRecord, Store

FIXED = ABConfig(sequential=False, alpha=0.05, min_detectable_effect=0.05)
SEQ = ABConfig(sequential=True, alpha=0.05, min_detectable_effect=0.05)


def test_z_test_and_ci_match_statsmodels() -> None:
    ca, na, cb, nb = 1620, 2000, 1700, 2000
    d = decide(ca, na, cb, nb, units=(1000, 1000), split=0.5, cfg=FIXED)
    z_ref, p_ref = proportions_ztest([cb, ca], [nb, na])
    lo, hi = confint_proportions_2indep(cb, nb, ca, na, method="wald", compare="diff")
    assert d.z == pytest.approx(z_ref, rel=1e-9)
    assert d.p_value == pytest.approx(p_ref, rel=1e-9)
    assert d.ci == pytest.approx((lo, hi), rel=1e-9)
    assert d.diff == pytest.approx(0.04)
    assert d.verdict == "promote_challenger"


def test_srm_matches_scipy_and_blocks_the_verdict() -> None:
    units = (9000, 1400)  # planned 90/10: 1040 expected in the challenger arm
    d = decide(1620, 2000, 1700, 2000, units=units, split=0.1, cfg=FIXED)
    ref = stats.chisquare(units, f_exp=[0.9 * sum(units), 0.1 * sum(units)]).pvalue
    assert d.srm_p_value == pytest.approx(ref, rel=1e-9)
    assert d.srm_mismatch and d.verdict == "keep_collecting"
    assert "sample-ratio mismatch" in d.reason
    ok = decide(1620, 2000, 1700, 2000, units=(9010, 990), split=0.1, cfg=FIXED)
    assert not ok.srm_mismatch and ok.verdict == "promote_challenger"


def test_verdicts() -> None:
    # Worse challenger, significant.
    assert decide(1700, 2000, 1600, 2000, units=None, split=0.5, cfg=FIXED).verdict == "keep_champion"
    # Better but the gate metric fails.
    d = decide(1620, 2000, 1700, 2000, units=None, split=0.5, cfg=FIXED, gate_ok=False)
    assert d.verdict == "keep_champion" and "gate" in d.reason
    # Fixed horizon, too early: no verdict even with a large observed difference.
    early = decide(30, 50, 45, 50, units=None, split=0.5, cfg=FIXED)
    assert early.verdict == "keep_collecting" and early.required_per_arm > 50
    # Planned size reached, no difference: the champion stays.
    flat = decide(1600, 2000, 1601, 2000, units=None, split=0.5, cfg=FIXED)
    assert flat.verdict == "keep_champion"
    # Nothing labelled yet.
    assert decide(0, 0, 0, 0, units=None, split=0.5, cfg=FIXED).verdict == "keep_collecting"
    # Sequential reads any time; a clear win is a verdict before the planned size.
    seq = decide(300, 500, 400, 500, units=None, split=0.5, cfg=SEQ)
    assert seq.p_value_kind == "msprt" and seq.verdict == "promote_challenger"


def _simulate(rng: np.random.Generator, sims: int, n_per_day: int, days: int, p: float):
    a = rng.binomial(n_per_day, p, size=(sims, days)).cumsum(axis=1)
    b = rng.binomial(n_per_day, p, size=(sims, days)).cumsum(axis=1)
    n = np.arange(1, days + 1) * n_per_day
    return a, b, n


def test_false_positive_rate_fixed_horizon_is_alpha() -> None:
    rng = np.random.default_rng(7)
    sims = 2000
    n_arm = 1500
    a = rng.binomial(n_arm, 0.8, size=sims)
    b = rng.binomial(n_arm, 0.8, size=sims)
    cfg = ABConfig(sequential=False, alpha=0.05, min_detectable_effect=0.05)
    rejections = sum(decide(int(x), n_arm, int(y), n_arm, units=None, split=0.5, cfg=cfg).p_value < cfg.alpha
                     for x, y in zip(a, b))
    rate = rejections / sims
    se = np.sqrt(0.05 * 0.95 / sims)
    assert abs(rate - 0.05) < 3.5 * se, rate


def test_sequential_mode_survives_daily_peeking() -> None:
    """14 daily looks with no true difference: the mSPRT stays under alpha, a naive z-test does not."""
    rng = np.random.default_rng(11)
    sims, days, per_day = 600, 14, 200
    a, b, n = _simulate(rng, sims, per_day, days, 0.8)
    msprt_hits = 0
    for i in range(sims):
        looks = (a[i].astype(float), n.astype(float), b[i].astype(float), n.astype(float))
        d = decide(int(a[i, -1]), int(n[-1]), int(b[i, -1]), int(n[-1]), units=None, split=0.5, cfg=SEQ, looks=looks)
        msprt_hits += d.p_value < SEQ.alpha
    assert msprt_hits / sims <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims)
    # The same data read daily with a fixed-horizon z-test (vectorised, same formula as statsmodels).
    pooled = (a + b) / (2 * n)
    z = (b - a) / n / np.sqrt(pooled * (1 - pooled) * 2 / n)
    naive = (2 * stats.norm.sf(np.abs(z)) < 0.05).any(axis=1).mean()
    assert naive > 0.08  # why the sequential mode exists


def test_daily_looks_are_cumulative() -> None:
    start = 1_000_000.0
    ts_a = start + np.array([10, 90_000, 90_001, 200_000.0])
    ok_a = np.array([True, False, True, True])
    ts_b = start + np.array([100, 180_000.0])
    ok_b = np.array([True, True])
    sa, na, sb, nb = daily_looks(ts_a, ok_a, ts_b, ok_b, start)
    assert na.tolist() == [1, 3, 4] and sa.tolist() == [1, 2, 3]
    assert nb.tolist() == [1, 1, 2] and sb.tolist() == [1, 1, 2]


def _ab_store(tmp_path):
    """A store with a finished-looking A/B test whose challenger is clearly more accurate (no scores logged)."""
    specs = [FeatureSpec(name="x1")]
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    store.init()
    start = datetime.now(UTC) - timedelta(days=2)
    test_id = store.start_ab_test("m", champion_version="1", challenger_version="2", split=0.5, salt="s",
                                  config=FIXED.model_dump(mode="json"), started_at=start)
    rng = np.random.default_rng(3)
    preds, labels, assigns = [], [], []
    for i in range(4000):
        unit = f"u{i}"
        arm = arm_for("s", unit, 0.5)
        version = "2" if arm == "challenger" else "1"
        p_right = 0.85 if version == "2" else 0.75
        y = int(rng.integers(0, 2))
        pred = y if rng.random() < p_right else 1 - y
        ts = start + timedelta(seconds=30 * i)
        preds.append(PredictionRecord(f"r{i}", {"x1": 0.0}, float(pred), ts, version, unit, arm, None, test_id))
        labels.append(LabelRecord(f"r{i}", float(y), ts + timedelta(minutes=1)))
        assigns.append((unit, arm))
    store.log_predictions("m", preds, specs)
    store.log_labels(labels)
    store.record_assignments(test_id, assigns)
    return store, store.ab_test(test_id)


def test_analyze_reads_the_store(tmp_path) -> None:
    store, test = _ab_store(tmp_path)
    result = analyze(store, test, gate=GateConfig(metric="f1", min_ratio=0.95))
    champ, chall = result.arms["champion"], result.arms["challenger"]
    assert champ.n + chall.n == 4000 and champ.units + chall.units == 4000
    assert 0.72 < champ.accuracy < 0.78 and 0.82 < chall.accuracy < 0.88
    assert result.verdict == "promote_challenger"
    assert not result.decision.srm_mismatch
    as_dict = result.to_dict()
    assert as_dict["verdict"] == "promote_challenger" and as_dict["arms"]["challenger"]["version"] == "2"
    store.close()


def test_undefined_gate_metric_blocks_promotion_as_the_offline_gate_does(tmp_path) -> None:
    # No scores were logged, so roc_auc is undefined on both arms: the shared gate rejects it,
    # so a more accurate challenger is still not promoted on an unverifiable gate metric.
    store, test = _ab_store(tmp_path)
    result = analyze(store, test, gate=GateConfig(metric="roc_auc", min_ratio=0.95))
    assert result.arms["challenger"].gate_metric is None
    assert result.verdict == "keep_champion" and "gate metric" in result.decision.reason
    store.close()
