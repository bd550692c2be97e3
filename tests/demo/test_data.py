from __future__ import annotations

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score

from retrainer.demo.data import FEATURES, StreamSpec, _default_probability, _features, generate_stream
from retrainer.stats.estimation import estimate_performance


def _numeric(frame):
    x = frame[[f.name for f in FEATURES if f.type == "numeric"]].copy()
    x["card"] = (frame["product"] == "card").astype(int)
    x["south"] = (frame["region"] == "south").astype(int)
    return x


def test_stream_is_deterministic_ordered_and_labels_arrive_late():
    spec = StreamSpec(days=10, rows_per_day=200, drift_day=5, seed=3)
    a, b = generate_stream(spec), generate_stream(spec)
    assert a.equals(b)
    assert len(a) == 2000 and a["request_id"].is_unique
    assert a["ts"].is_monotonic_increasing
    delay = (a["label_ts"] - a["ts"]).dt.total_seconds() / 86400
    assert delay.min() >= 1.0 and delay.max() <= 5.0
    assert 0 < a["months_employed"].isna().mean() < 0.1
    assert set(a["region"]) <= {"north", "south", "east", "west"}


def test_drift_hurts_an_old_model_and_retraining_recovers():
    frame = generate_stream(StreamSpec(days=40, rows_per_day=400, drift_day=25, seed=11))
    day = ((frame["ts"] - frame["ts"].min()).dt.total_seconds() // 86400).to_numpy()
    x, y = _numeric(frame), frame["label"]
    old = HistGradientBoostingClassifier(random_state=0).fit(x[day < 20], y[day < 20])
    before = accuracy_score(y[(day >= 20) & (day < 25)], old.predict(x[(day >= 20) & (day < 25)]))
    after = accuracy_score(y[day >= 32], old.predict(x[day >= 32]))
    new = HistGradientBoostingClassifier(random_state=0).fit(x[(day >= 25) & (day < 32)], y[(day >= 25) & (day < 32)])
    recovered = accuracy_score(y[day >= 32], new.predict(x[day >= 32]))
    assert before > 0.85 > after
    assert recovered > after + 0.04
    assert np.isclose(frame.loc[day < 25, "income"].mean(), 54_000, rtol=0.05)


def test_the_covariate_part_alone_lowers_the_f1_a_calibrated_old_model_expects():
    """Post-onset features under the pre-onset P(y | x): CBPE on the true probabilities (a perfectly
    calibrated old model) sees f1 fall well past the demo's 0.05 drop, the default rate barely moving,
    and the labels agree with it: a fall ``estimated_performance`` can see before any label is back."""
    rng = np.random.default_rng(5)
    n = 50_000
    seen = {}
    for drifted in (False, True):
        x = _features(rng, n, np.full(n, drifted))
        p = _default_probability(x, np.zeros(n, bool))
        estimated = estimate_performance(p, predicted=p >= 0.5).metrics["f1"]
        realized = f1_score(rng.random(n) < p, p >= 0.5)
        assert abs(estimated - realized) < 0.01
        seen[drifted] = (estimated, p.mean())
    assert seen[False][0] - seen[True][0] > 0.08, seen
    assert abs(seen[False][1] - seen[True][1]) < 0.05, seen
