"""Labels that arrive 14 days late: ``performance`` judges complete windows (maturity: auto),
``estimated_performance`` sees a covariate shift before any of its labels are back, and on a
quiet stream neither fires.

The stream: one prediction every 15 minutes for 60 days; P(y | x) = sigmoid(2 x1 + x2) never
changes and the model's score is exactly that probability (calibrated), thresholded at 0.5.
Every label arrives 14 days after its prediction. The shifted stream moves x1 towards the
decision boundary from day 40 on (a covariate shift: the model gets less sure, and less right).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from retrainer.config import FeatureSpec
from retrainer.store import Store
from retrainer.store.records import LabelRecord
from retrainer.testing import InMemoryWindowSource
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.performance import PerformanceTrigger

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
DELAY = timedelta(days=14)
SHIFT_DAY = 40
DAY = timedelta(days=1)


def stream(*, shifted: bool, seed: int = 0, days: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range(T0, T0 + days * DAY, freq="15min", inclusive="left")
    n = len(ts)
    late = np.asarray(ts >= T0 + SHIFT_DAY * DAY) if shifted else np.zeros(n, dtype=bool)
    x1 = np.where(late, rng.normal(0.0, 0.25, n), rng.normal(0.0, 1.5, n))
    x2 = rng.normal(0.0, 0.5, n)
    p = 1.0 / (1.0 + np.exp(-(2.0 * x1 + x2)))
    y = (rng.random(n) < p).astype(float)
    return pd.DataFrame({
        "ts": ts, "model_name": "m", "model_version": "1", "x1": x1, "x2": x2,
        "y_true": y, "y_pred": (p >= 0.5).astype(float), "score": p, "labelled_at": ts + DELAY,
    })


def in_memory(frame: pd.DataFrame) -> InMemoryWindowSource:
    return InMemoryWindowSource(frame)


def sql_store(frame: pd.DataFrame, path) -> Store:
    store = Store.open(f"sqlite:///{path / 'store.db'}")
    store.init()
    log = frame.rename(columns={"y_pred": "prediction"}).assign(request_id=[f"r{i}" for i in range(len(frame))])
    specs = [FeatureSpec(name="x1", type="numeric"), FeatureSpec(name="x2", type="numeric")]
    store.log_prediction_frame("m", log[["request_id", "ts", "prediction", "score", "model_version", "x1", "x2"]], specs)
    store.log_labels([LabelRecord(r, float(y), t.to_pydatetime())
                      for r, y, t in zip(log["request_id"], log["y_true"], log["labelled_at"], strict=True)])
    return store


@pytest.fixture(params=["in_memory", "sqlite"])
def quiet_source(request: pytest.FixtureRequest, tmp_path):
    frame = stream(shifted=False)
    if request.param == "in_memory":
        yield frame, in_memory(frame)
    else:
        store = sql_store(frame, tmp_path)
        yield frame, store
        store.close()


def ctx_at(source, now: datetime) -> TriggerContext:
    return TriggerContext(model_name="m", now=now, source=source)


def test_auto_maturity_judges_the_window_that_ended_one_delay_ago(quiet_source) -> None:
    frame, source = quiet_source
    now = T0 + 50 * DAY
    trigger = PerformanceTrigger({"window": "7d", "thresholds": {"accuracy": 0.5, "f1": 0.5, "roc_auc": 0.5}})
    d = trigger.evaluate(ctx_at(source, now))
    # Independently: the predictions made in [now - 14d - 7d, now - 14d), scored by sklearn.
    lo, hi = pd.Timestamp(now - DELAY - 7 * DAY), pd.Timestamp(now - DELAY)
    rows = frame[(frame["ts"] >= lo) & (frame["ts"] < hi)]
    assert d.status == "ok" and d.evidence["n_labelled"] == len(rows) == 7 * 96
    got = d.evidence["metrics"]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(rows["y_true"], rows["y_pred"]), abs=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(rows["y_true"], rows["y_pred"]), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(rows["y_true"], rows["score"]), abs=1e-12)
    assert d.evidence["label_coverage"] == 1.0
    assert d.evidence["maturity"]["lag_s"] == DELAY.total_seconds()
    assert d.evidence["window_end"] == (now - DELAY).isoformat()
    assert d.evidence["maturity"]["label_delay"]["p95_s"] == DELAY.total_seconds()
    assert "window ending 2026-02-06 (labels arrive after 14d (p95), 100% coverage)" in d.reason


def test_without_maturity_the_reason_says_the_delay_and_names_the_last_complete_window(quiet_source) -> None:
    _, source = quiet_source
    now = T0 + 50 * DAY
    d = PerformanceTrigger({"window": "7d", "maturity": "none"}).evaluate(ctx_at(source, now))
    assert d.status == "insufficient_data" and d.evidence["n_labelled"] == 0 and d.evidence["n_predictions"] == 7 * 96
    assert d.reason.startswith("Labels arrive after 14d (p95); a 1w window ending now has 0% coverage")
    assert "the last complete window ended 2026-02-06; maturity: auto judges that one." in d.reason
    # A fixed maturity shorter than the delay: partly labelled, and the reason still explains it.
    short = PerformanceTrigger({"window": "7d", "maturity": "10d", "min_labels": 700}).evaluate(ctx_at(source, now))
    assert short.status == "insufficient_data" and 0 < short.evidence["label_coverage"] < 1
    assert "a 1w window ending 2026-02-10 has 43% coverage" in short.reason


def test_no_look_ahead_labels_that_arrive_after_now_do_not_count(quiet_source) -> None:
    frame, source = quiet_source
    # At day 20 only the labels of days 0..6 are back: the auto window [-1d, 6d) has them all,
    # and nothing of what arrives later (the same window judged at day 60 has the same rows).
    trigger = PerformanceTrigger({"window": "7d", "thresholds": {"accuracy": 0.5}, "min_labels": 10})
    early = trigger.evaluate(ctx_at(source, T0 + 20 * DAY))
    assert early.evidence["window_end"] == (T0 + 6 * DAY).isoformat()
    assert early.evidence["n_labelled"] == 6 * 96
    # Labels that had arrived by day 20 (as_of inclusive: day 6 00:00's label lands exactly at now).
    assert early.evidence["maturity"]["label_delay"]["n"] == 6 * 96 + 1


def test_performance_with_auto_maturity_stays_quiet_on_both_streams_before_labels_return(tmp_path) -> None:
    trigger = PerformanceTrigger({"window": "7d", "thresholds": {"accuracy": 0.80}})
    for shifted in (False, True):
        source = in_memory(stream(shifted=shifted))
        for day in range(SHIFT_DAY + 1, SHIFT_DAY + 14):
            d = trigger.evaluate(ctx_at(source, T0 + day * DAY))
            assert d.status == "ok", (shifted, day, d.reason)
    # ... and once the shifted labels are back, the matured window sees the drop.
    late = trigger.evaluate(ctx_at(in_memory(stream(shifted=True)), T0 + (SHIFT_DAY + 22) * DAY))
    assert late.fired and late.evidence["metrics"]["accuracy"] < 0.80


# -- estimated_performance: the label-free view of the recent window ------------------------

def reference(frame: pd.DataFrame) -> dict:
    """The champion's profile as registration stores it: a calibration map fitted on a holdout
    (the first 14 days, before any shift) and the holdout's realized metrics."""
    from retrainer.stats.calibration import fit_calibration

    holdout = frame[frame["ts"] < pd.Timestamp(T0 + 14 * DAY)]
    cal = fit_calibration(holdout["score"].to_numpy(), holdout["y_true"].to_numpy())
    return {"calibration": cal.to_dict(),
            "holdout_metrics": {"accuracy": skm.accuracy_score(holdout["y_true"], holdout["y_pred"]),
                                "f1": skm.f1_score(holdout["y_true"], holdout["y_pred"])}}


def estimated():
    from retrainer.triggers.estimated_performance import EstimatedPerformanceTrigger

    return EstimatedPerformanceTrigger({"window": "3d", "drop": {"accuracy": 0.05, "f1": 0.05}})


def checks(frame: pd.DataFrame, days: range) -> list[tuple[int, object, object]]:
    source, ref = in_memory(frame), reference(frame)
    realized = PerformanceTrigger({"window": "7d", "thresholds": {"accuracy": 0.80}})
    out = []
    for day in days:
        ctx = TriggerContext(model_name="m", now=T0 + day * DAY, source=source, reference=ref)
        out.append((day, estimated().evaluate(ctx), realized.evaluate(ctx)))
    return out


def test_on_a_quiet_stream_neither_performance_nor_the_estimate_fires() -> None:
    for day, est, real in checks(stream(shifted=False), range(21, 60)):  # from the first full matured window
        assert est.status == "ok" and real.status == "ok", (day, est.reason, real.reason)


def test_the_estimate_fires_on_a_covariate_shift_before_any_shifted_label_has_arrived() -> None:
    frame = stream(shifted=True)
    first_shifted_label = T0 + SHIFT_DAY * DAY + DELAY
    results = checks(frame, range(SHIFT_DAY - 5, SHIFT_DAY + 14))
    for day, est, real in results:
        if day <= SHIFT_DAY:
            assert est.status == "ok", (day, est.reason)  # nothing shifted yet
        assert real.status == "ok", (day, real.reason)  # the matured window predates the shift
    fired = [(day, est) for day, est, _ in results if est.fired]
    assert fired, [est.reason for _, est, _ in results]
    day, est = fired[0]
    assert T0 + day * DAY < first_shifted_label and day <= SHIFT_DAY + 3
    assert est.evidence["realized_share"] == 0.0  # judged on scores alone: no label of the window is back
    assert est.evidence["estimate"]["accuracy"] < reference(frame)["holdout_metrics"]["accuracy"] - 0.05


def test_matured_labels_confirm_the_estimate_about_one_delay_later() -> None:
    """The lead time: the estimate crossed days before the matured labels could say the same."""
    results = checks(stream(shifted=True), range(SHIFT_DAY, 60))
    crossed = next(day for day, est, _ in results if est.fired)
    confirmed = next(day for day, _, real in results if real.fired)
    assert crossed <= SHIFT_DAY + 3 and confirmed >= SHIFT_DAY + 14
    assert confirmed - crossed >= 11
