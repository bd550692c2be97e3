"""estimated_performance: fires on covariate shift before any label of it arrives, blends realized
labels, guards drops with the CI, and says why when it cannot estimate."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from retrainer.errors import InvalidTriggerParams
from retrainer.stats.calibration import fit_calibration
from retrainer.tasks.evaluate import evaluate_model
from retrainer.tasks.register import holdout_calibration
from retrainer.testing import DEFAULT_NOW, InMemoryWindowSource, make_context
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.estimated_performance import EstimatedPerformanceTrigger
from retrainer.windows import LabelledWindow

sys.path.insert(0, str(Path(__file__).parent))
from test_label_delay import sql_store  # noqa: E402  (the SQLite store built the same way)

EVERY = timedelta(minutes=10)
DELAY = timedelta(days=14)


def _truth(x1: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-3 * x1))  # P(y | x), the same in every period: covariate shift only


@pytest.fixture(scope="module")
def champion():
    """An under-confident model (heavy regularisation), its holdout calibration and metrics."""
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"x1": rng.normal(0, 1.5, 6000), "x2": rng.normal(size=6000)})
    y = (rng.random(6000) < _truth(x["x1"].to_numpy())).astype(int)
    model = LogisticRegression(C=0.002).fit(x[:3000], y[:3000])
    holdout_x, holdout_y = x[3000:], y[3000:]
    profile = {"calibration": holdout_calibration(model, holdout_x, holdout_y),
               "holdout_metrics": dict(evaluate_model(model, holdout_x, holdout_y))}
    return model, profile


def stream(model, *, shifted: bool, seed: int = 1, delay: timedelta = DELAY) -> pd.DataFrame:
    """28 days of predictions; with ``shifted`` the last 5 days crowd x1 near the boundary."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(end=DEFAULT_NOW - EVERY, periods=int(timedelta(days=28) / EVERY), freq=EVERY)
    late = np.asarray(ts >= DEFAULT_NOW - timedelta(days=5)) & shifted
    x1 = np.where(late, rng.normal(0, 0.25, len(ts)), rng.normal(0, 1.5, len(ts)))
    x = pd.DataFrame({"x1": x1, "x2": rng.normal(size=len(ts))})
    score = model.predict_proba(x)[:, 1]
    return pd.DataFrame({
        "ts": ts, "model_name": "m", "model_version": "3", "x1": x1, "x2": x["x2"],
        "y_true": (rng.random(len(ts)) < _truth(x1)).astype(int), "y_pred": (score >= 0.5).astype(int),
        "score": score, "labelled_at": ts + delay,
    })


DROP = {"window": "3d", "drop": {"accuracy": 0.05, "f1": 0.05}}


@pytest.mark.parametrize("backend", ["in_memory", "sqlite"])
def test_fires_on_covariate_shift_before_any_label_of_it_and_stays_quiet_otherwise(champion, backend, tmp_path):
    model, profile = champion
    decisions = {}
    for shifted in (False, True):
        frame = stream(model, shifted=shifted)
        folder = tmp_path / str(shifted)
        folder.mkdir()
        source = InMemoryWindowSource(frame) if backend == "in_memory" else sql_store(frame, folder)
        try:
            ctx = TriggerContext(model_name="m", now=DEFAULT_NOW, source=source, reference=profile)
            decisions[shifted] = EstimatedPerformanceTrigger(DROP).evaluate(ctx)
        finally:
            if backend == "sqlite":
                source.close()
    quiet, shifted = decisions[False], decisions[True]
    assert quiet.status == "ok", quiet.reason
    assert shifted.status == "fired", shifted.reason
    assert shifted.evidence["realized_share"] == 0.0  # labels come 14 days late: none of the window is in
    assert set(shifted.evidence["failing"]) >= {"accuracy"}
    # The realized accuracy of the shifted window (known here, not to the trigger) is inside the CI.
    frame = stream(model, shifted=True)
    window = frame[frame["ts"] >= DEFAULT_NOW - timedelta(days=3)]
    realized = accuracy_score(window["y_true"], window["y_pred"])
    lo, hi = shifted.evidence["ci"]["accuracy"]
    assert lo <= realized <= hi and realized < profile["holdout_metrics"]["accuracy"] - 0.05
    assert shifted.evidence["calibration"] == profile["calibration"]["method"]
    assert shifted.evidence["n"] == len(window)


def test_with_every_label_in_the_blend_is_sklearn_on_those_labels(champion):
    model, profile = champion
    frame = stream(model, shifted=True, delay=timedelta(0))
    ctx = make_context(frame, model_name="m", reference=profile)
    d = EstimatedPerformanceTrigger({"window": "3d", "thresholds": {"accuracy": 0.5, "f1": 0.5, "roc_auc": 0.5}}).evaluate(ctx)
    window = frame[frame["ts"] >= DEFAULT_NOW - timedelta(days=3)]
    assert d.evidence["realized_share"] == 1.0
    expected = {"accuracy": accuracy_score(window["y_true"], window["y_pred"]),
                "f1": f1_score(window["y_true"], window["y_pred"]), "roc_auc": roc_auc_score(window["y_true"], window["score"])}
    for m, v in expected.items():
        assert d.evidence["estimate"][m] == pytest.approx(v, abs=1e-12)
        assert tuple(d.evidence["ci"][m]) == (pytest.approx(v, abs=1e-12),) * 2


def test_a_drop_inside_the_noise_does_not_fire_but_the_same_floor_does(champion):
    model, profile = champion
    ctx = make_context(stream(model, shifted=False), model_name="m", reference=profile)
    probe = EstimatedPerformanceTrigger({"window": "1d", "min_predictions": 100, "thresholds": {"f1": 0.0}}).evaluate(ctx)
    est, (lo, hi) = probe.evidence["estimate"]["f1"], probe.evidence["ci"]["f1"]
    line = est + (hi - est) / 2  # the estimate is below it, the CI's upper bound is not
    ref = {**profile, "holdout_metrics": {**profile["holdout_metrics"], "f1": line + 0.05}}
    ctx = make_context(stream(model, shifted=False), model_name="m", reference=ref)
    guarded = EstimatedPerformanceTrigger({"window": "1d", "min_predictions": 100, "drop": {"f1": 0.05}}).evaluate(ctx)
    assert guarded.status == "ok" and guarded.threshold == pytest.approx(line)
    floor = EstimatedPerformanceTrigger({"window": "1d", "min_predictions": 100, "thresholds": {"f1": line}, "drop": {}}).evaluate(ctx)
    assert floor.status == "fired" and list(floor.evidence["failing"]) == ["f1"]


class _LabelledOnly:
    """A source written before scored_window existed."""

    def __init__(self, frame):
        self._inner = InMemoryWindowSource(frame)

    def features_window(self, *a, **k):
        return self._inner.features_window(*a, **k)

    def labelled_window(self, *a, **k):
        return self._inner.labelled_window(*a, **k)

    def count_predictions(self, *a, **k):
        return self._inner.count_predictions(*a, **k)


def test_says_why_it_cannot_estimate(champion):
    model, profile = champion
    frame = stream(model, shifted=False)
    run = EstimatedPerformanceTrigger(DROP).evaluate

    d = run(make_context(frame, model_name="m", reference={"holdout_metrics": profile["holdout_metrics"]}))
    assert d.status == "insufficient_data" and "binary classifiers" in d.reason and "regression" in d.reason
    d = run(make_context(frame, model_name="m", reference={**profile, "calibration": {"skipped": "only 3 positives"}}))
    assert d.status == "insufficient_data" and "only 3 positives" in d.reason
    d = run(make_context(frame, model_name="m", reference={"calibration": profile["calibration"]}))
    assert d.status == "insufficient_data" and "no holdout figure" in d.reason
    multiclass = frame.assign(y_pred=frame["y_pred"] + (frame["x2"] > 1))
    d = run(make_context(multiclass, model_name="m", reference=profile))
    assert d.status == "insufficient_data" and "binary classifiers" in d.reason
    d = EstimatedPerformanceTrigger({**DROP, "min_predictions": 10_000}).evaluate(
        make_context(frame, model_name="m", reference=profile))
    assert d.status == "insufficient_data" and "(432 predictions; min_samples 10000)" in d.reason
    ctx = TriggerContext(model_name="m", now=DEFAULT_NOW, source=_LabelledOnly(frame), reference=profile)
    assert ctx.scored(timedelta(days=1)) is None
    d = run(ctx)
    assert d.status == "insufficient_data" and "unlabelled predictions" in d.reason


def test_registration_skips_calibration_for_models_it_cannot_estimate():
    rng = np.random.default_rng(2)
    x = pd.DataFrame({"x1": rng.normal(size=300)})
    three = rng.integers(0, 3, 300)
    assert holdout_calibration(LogisticRegression().fit(x, three), x, three) is None
    from sklearn.linear_model import LinearRegression

    assert holdout_calibration(LinearRegression().fit(x, x["x1"]), x, x["x1"]) is None
    few = np.zeros(300, int)
    few[:3] = 1
    skipped = holdout_calibration(LogisticRegression().fit(x, few), x, few)
    assert "at least 5 of each" in skipped["skipped"]


def test_registration_map_is_the_one_fit_calibration_gives_on_the_holdout_scores(champion):
    model, profile = champion
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"x1": rng.normal(0, 1.5, 6000), "x2": rng.normal(size=6000)})
    y = (rng.random(6000) < _truth(x["x1"].to_numpy())).astype(int)
    direct = fit_calibration(model.predict_proba(x[3000:])[:, 1], y[3000:] == 1).to_dict()
    assert profile["calibration"] == direct


@pytest.mark.parametrize(
    ("params", "needle"),
    [({"drop": {}}, "at least one metric"), ({"thresholds": {"f1": 1.5}}, "within [0, 1]"),
     ({"drop": {"mape": 0.1}}, "drop")],
)
def test_params_are_checked(params, needle):
    with pytest.raises(InvalidTriggerParams, match=needle.replace("[", r"\[")):
        EstimatedPerformanceTrigger(params)


def test_scored_window_is_every_prediction_with_labels_only_as_of_now(champion):
    model, _ = champion
    frame = stream(model, shifted=False, delay=timedelta(days=1))
    ctx = make_context(frame, model_name="m")
    w = ctx.scored(timedelta(days=3))
    assert isinstance(w, LabelledWindow) and w.n_predictions == len(w) == 3 * 144
    labelled = ctx.labelled(timedelta(days=3))
    assert np.count_nonzero(np.isfinite(w.y_true)) == len(labelled)
    np.testing.assert_array_equal(w.y_true[np.isfinite(w.y_true)], labelled.y_true)
