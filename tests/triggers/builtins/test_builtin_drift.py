"""drift: decision quality (false alarms at most alpha, power on a small shift) and behaviour."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from retrainer.config import FeatureSpec
from retrainer.errors import TriggerError
from retrainer.profiles import build_reference_profile, profile_arrays
from retrainer.testing import InMemoryWindowSource, make_context
from retrainer.triggers.drift import PREDICTION, DriftTrigger

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def numeric_profile(rng, n_features, n=11_000):
    names = [f"f{j:02d}" for j in range(n_features)]
    frame = pd.DataFrame({c: rng.normal(size=n) for c in names})
    return names, profile_arrays(build_reference_profile(frame, [FeatureSpec(name=c) for c in names]))


def daily_log(rng, names, days, per_day, shift=None):
    """``per_day`` rows a day for ``days`` days, every feature N(0, 1) (plus ``shift`` per column)."""
    offsets = np.repeat(np.arange(days), per_day) * 86400.0 + np.tile(np.linspace(0, 86_000, per_day), days)
    data = {"ts": pd.Timestamp(T0) + pd.to_timedelta(offsets, unit="s")}
    for c in names:
        data[c] = rng.normal(size=days * per_day) + (shift or {}).get(c, 0.0)
    return pd.DataFrame(data)


def test_false_alarm_rate_on_no_drift_windows_is_at_most_alpha():
    """Verdict mode tested: statistic="pvalue" (KS per feature, Benjamini-Hochberg across the 10
    features) with verdict="max" (fire when any adjusted p < alpha). Under no drift BH keeps the
    chance of any rejection at most alpha, so the trigger's false-alarm rate must be <= alpha."""
    rng = np.random.default_rng(20250101)
    alpha, windows = 0.05, 200
    names, profile = numeric_profile(rng, 10)
    source = InMemoryWindowSource(daily_log(rng, names, windows, 1000))
    trigger = DriftTrigger({"statistic": "pvalue", "alpha": alpha, "verdict": "max", "window": "1d",
                            "min_samples": 500})
    decisions = [trigger.evaluate(make_context(source=source, now=T0 + timedelta(days=d + 1), reference=profile))
                 for d in range(windows)]
    assert all(d.status in ("ok", "fired") and d.evidence["n_current"] == 1000 for d in decisions)
    rate = sum(d.fired for d in decisions) / windows
    assert rate <= alpha, f"false-alarm rate {rate:.3f} > alpha {alpha}"


def test_a_0_2_sd_mean_shift_in_one_feature_of_20_fires_at_n_5000():
    rng = np.random.default_rng(7)
    names, profile = numeric_profile(rng, 20)
    ctx = make_context(daily_log(rng, names, 1, 5000, shift={"f13": 0.2}), now=T0 + timedelta(days=1),
                       reference=profile)
    d = DriftTrigger({"statistic": "pvalue", "window": "1d"}).evaluate(ctx)
    assert d.fired and list(d.evidence["drifted"]) == ["f13"] and d.evidence["top"][0]["feature"] == "f13"
    assert d.value < 1e-6 and d.threshold == 0.05
    # PSI at the seed's 0.25 is a coarser alarm: a 0.2-SD shift has PSI ~ 0.04 and does not fire.
    psi = DriftTrigger({"window": "1d"}).evaluate(ctx)
    assert not psi.fired and 0.01 < psi.value < 0.1 and psi.evidence["top"][0]["feature"] == "f13"


@pytest.fixture(scope="module")
def mixed():
    rng = np.random.default_rng(3)
    n = 4000
    train = pd.DataFrame({"a": rng.normal(size=n), "b": rng.exponential(size=n),
                          "c": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2])})
    specs = [FeatureSpec(name="a"), FeatureSpec(name="b"), FeatureSpec(name="c", type="categorical")]
    profile = build_reference_profile(train, specs, predictions=rng.random(n), bins=10)
    return rng, profile


def window(rng, n=1000, a_shift=0.0, c=("x", "y", "z"), p=(0.5, 0.3, 0.2), score=None):
    ts = [T0 + timedelta(seconds=10 * i) for i in range(n)]
    data = {"ts": ts, "a": rng.normal(size=n) + a_shift, "b": rng.exponential(size=n),
            "c": rng.choice(list(c), n, p=list(p)), "y_true": 1, "y_pred": 1,
            "score": rng.random(n) if score is None else score}
    return make_context(data, now=T0 + timedelta(days=1))


def test_evidence_lists_top_drifted_features_with_values(mixed):
    rng, profile = mixed
    ctx = window(rng, a_shift=1.5)
    d = DriftTrigger({"top": 2}).evaluate(make_context(source=ctx.source, now=ctx.now, reference=profile))
    assert d.fired and d.evidence["top"][0]["feature"] == "a" and len(d.evidence["top"]) == 2
    top = d.evidence["top"][0]
    assert {"psi", "ks", "ks_pvalue", "wasserstein", "threshold", "drifted"} <= set(top)
    assert d.value == top["psi"] > 0.25 and "a" in d.reason


def test_unseen_categories_are_drift_not_a_crash(mixed):
    rng, profile = mixed
    src = window(rng, c=("x", "y", "z", "new"), p=(0.3, 0.2, 0.1, 0.4)).source
    for stat in ("psi", "pvalue", "distance"):
        d = DriftTrigger({"statistic": stat}).evaluate(make_context(source=src, now=T0 + timedelta(days=1),
                                                                    reference=profile))
        assert d.fired and "c" in d.evidence["drifted"], stat


def test_per_feature_thresholds(mixed):
    rng, profile = mixed
    src = window(rng, a_shift=0.8).source
    ctx = make_context(source=src, now=T0 + timedelta(days=1), reference=profile)
    assert DriftTrigger().evaluate(ctx).fired
    relaxed = DriftTrigger({"thresholds": {"a": 5.0}}).evaluate(ctx)
    assert not relaxed.fired and next(t for t in relaxed.evidence["top"] if t["feature"] == "a")["threshold"] == 5.0
    with pytest.raises(TriggerError, match="zz"):
        DriftTrigger({"thresholds": {"zz": 1.0}}).evaluate(ctx)


def test_share_verdict(mixed):
    rng, profile = mixed
    ctx = make_context(source=window(rng, a_shift=1.5).source, now=T0 + timedelta(days=1), reference=profile)
    one_of_three = DriftTrigger({"verdict": "share", "drift_share": 0.5}).evaluate(ctx)
    assert not one_of_three.fired and one_of_three.value == pytest.approx(1 / 3)
    assert DriftTrigger({"verdict": "share", "drift_share": 0.3}).evaluate(ctx).fired


def test_below_min_samples_is_insufficient(mixed):
    rng, profile = mixed
    ctx = make_context(source=window(rng, n=150, a_shift=3).source, now=T0 + timedelta(days=1), reference=profile)
    d = DriftTrigger({"min_samples": 200}).evaluate(ctx)
    assert d.status == "insufficient_data" and not d.fired
    assert DriftTrigger({"min_samples": 100}).evaluate(ctx).fired


def test_prediction_drift_option(mixed):
    rng, profile = mixed
    src = window(rng, score=np.clip(rng.random(1000) + 0.4, 0, 1)).source
    ctx = make_context(source=src, now=T0 + timedelta(days=1), reference=profile)
    assert not DriftTrigger().evaluate(ctx).fired
    d = DriftTrigger({"prediction": True}).evaluate(ctx)
    assert d.fired and list(d.evidence["drifted"]) == [PREDICTION]


def test_no_reference_is_insufficient_and_unknown_features_are_an_error(mixed):
    rng, profile = mixed
    src = window(rng).source
    assert DriftTrigger().evaluate(make_context(source=src, now=T0 + timedelta(days=1))).status == "insufficient_data"
    with pytest.raises(TriggerError, match="nope"):
        DriftTrigger({"features": ["a", "nope"]}).evaluate(
            make_context(source=src, now=T0 + timedelta(days=1), reference=profile))
