"""estimated_performance's p-value: Φ((estimate − line) / se) per line with the CI's own standard
error (against scipy.stats.norm), Bonferroni over lines, and each line's rule as a level of it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from retrainer.testing import DEFAULT_NOW, make_context
from retrainer.triggers.estimated_performance import EstimatedPerformanceTrigger, line_pvalues

PLATT = {"version": 1, "method": "platt", "a": 1.7, "b": 0.0, "input": "logit"}


def unlabelled(n: int, rng: np.random.Generator, spread: float) -> pd.DataFrame:
    ts = pd.Timestamp(DEFAULT_NOW) - pd.to_timedelta(np.sort(rng.uniform(60, 86_000, n)), unit="s")
    score = 1 / (1 + np.exp(-rng.normal(0, spread, n)))
    return pd.DataFrame({"ts": ts, "y_true": np.nan, "y_pred": (score >= 0.5).astype(float), "score": score,
                         "labelled_at": pd.NaT})


def test_each_lines_pvalue_is_the_normal_tail_and_each_rule_a_level_of_it():
    rng = np.random.default_rng(3)
    z = stats.norm.ppf(0.975)
    seen = {"floor": [0, 0], "drop": [0, 0]}  # [fired, not fired] per kind of line
    for i in range(80):
        holdout = {"accuracy": float(rng.uniform(0.6, 0.95)), "f1": float(rng.uniform(0.6, 0.95))}
        params = {"window": "1d", "min_predictions": 50, "drop": {"accuracy": 0.05, "f1": 0.05}}
        if i % 2:
            params["thresholds"] = {"accuracy": float(rng.uniform(0.6, 0.9))}
        ctx = make_context(unlabelled(int(rng.integers(60, 600)), rng, float(rng.uniform(0.5, 3))),
                           reference={"calibration": PLATT, "holdout_metrics": holdout})
        d = EstimatedPerformanceTrigger(params).evaluate(ctx)
        ev = d.evidence
        flat = []
        for m, per in ev["pvalues"].items():
            est, (lo, hi) = ev["estimate"][m], ev["ci"][m]
            assert 0 < lo and hi < 1  # unclipped: the se is (hi - est) / z
            se = (hi - est) / z
            lines = {"drop": ev["drop_lines"][m]} | ({"floor": ev["thresholds"][m]} if m in ev["thresholds"] else {})
            assert per.keys() == lines.keys()
            for kind, line in lines.items():
                assert per[kind] == pytest.approx(stats.norm.cdf((est - line) / se), rel=1e-6, abs=1e-12)
                fired_by = per[kind] < (0.025 if kind == "drop" else 0.5)
                rule = est < line and (kind == "floor" or hi < line)
                assert fired_by == rule, (m, kind, est, line, hi)
                seen[kind][0 if rule else 1] += 1
            assert (m in ev["failing"]) == (per.get("drop", 1) < 0.025 or per.get("floor", 1) < 0.5)
            flat += per.values()
        assert ev["pvalue"] == pytest.approx(min(1.0, len(flat) * min(flat)), rel=1e-12)
    assert min(min(v) for v in seen.values()) >= 5, seen  # both lines both fired and did not


def test_no_spread_means_the_realized_metric_is_the_fact():
    assert line_pvalues(0.7, 0.0, 0.8, 0.75) == {"floor": 0.0, "drop": 0.0}
    assert line_pvalues(0.8, None, 0.8, None) == {"floor": 1.0}


def test_no_pvalue_when_it_cannot_estimate():
    ctx = make_context(unlabelled(30, np.random.default_rng(0), 1.0), reference={"calibration": PLATT,
                                                                                 "holdout_metrics": {"f1": 0.8}})
    d = EstimatedPerformanceTrigger({"window": "1d"}).evaluate(ctx)
    assert d.status == "insufficient_data" and "pvalue" not in d.evidence
