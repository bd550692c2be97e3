"""cost_benefit: the decision's arithmetic against a hand-computed example, the boundary, no
look-ahead, composition in policies, the insufficient_data paths, and the store's retrain history."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from itertools import product

import numpy as np
import pandas as pd
import pytest

from retrainer.config import PolicyConfig
from retrainer.store import Store
from retrainer.testing import InMemoryWindowSource, check_trigger, make_context
from retrainer.triggers import AnyOf, AtLeast, ChampionInfo, TriggerContext, build_policy
from retrainer.triggers.cost_benefit import CostBenefitTrigger, early_gap_se
from retrainer.triggers.schedule import ScheduleTrigger
from retrainer.windows import RetrainRecord

NOW = datetime(2025, 3, 1, tzinfo=timezone.utc)
CHAMPION = ChampionInfo("3", created_at=NOW - timedelta(days=20))


def day_log(n: int = 100, errors: int = 20, *, version: str = "3", end: datetime = NOW) -> pd.DataFrame:
    """``n`` predictions spread over the day before ``end``, labelled at once, ``errors`` of them wrong."""
    ts = [end - timedelta(days=1) + i * timedelta(days=1) / n for i in range(n)]
    y_true = np.ones(n, dtype=int)
    y_pred = np.where(np.arange(n) < errors, 0, 1)
    return pd.DataFrame({"ts": ts, "model_version": version, "y_true": y_true, "y_pred": y_pred, "x": 0.0})


RETRAINS = (
    RetrainRecord(NOW - timedelta(days=20), {"accuracy": 0.93, "f1": 0.9}, duration_s=5400.0, version="3"),
    RetrainRecord(NOW - timedelta(days=50), {"accuracy": 0.95, "f1": 0.9}, duration_s=1800.0, version="2"),
)
# Hand-computed: champion accuracy 80/100 = 0.80; fresh = mean(0.93, 0.95) = 0.94; gap 0.14;
# traffic 100 per day over H = 30d = 3000 predictions; loss 0.14 x 3000 x 1.5 = 630.
# Retrain: 400 + mean(5400 s, 1800 s) = 1 h x 50 per hour = 450.
PARAMS = {"horizon": "30d", "window": "1d", "error_cost": 1.5, "retrain_cost": 400, "cost_per_hour": 50,
          "min_samples": 50}


def ctx_for(data=None, *, retrains=RETRAINS, reference=None, champion=CHAMPION, now=NOW) -> TriggerContext:
    return make_context(day_log() if data is None else data, now=now, champion=champion, retrains=retrains,
                        reference=reference)


def test_the_arithmetic_matches_a_hand_computed_example_term_by_term():
    d = CostBenefitTrigger(PARAMS).evaluate(ctx_for())
    e = d.evidence
    assert d.status == "fired" and d.fired
    assert e["metric"] == "accuracy" and e["horizon"] == "30d" and e["window"] == "1d"
    assert e["champion"]["source"] == "realized" and e["champion"]["version"] == "3"
    assert e["champion"]["value"] == pytest.approx(0.80) and e["champion"]["n_labelled"] == 100
    assert e["champion"]["n_predictions"] == 100 and e["champion"]["label_coverage"] == 1.0
    assert e["fresh"]["source"] == "retrain_runs" and e["fresh"]["value"] == pytest.approx(0.94)
    assert [r["version"] for r in e["fresh"]["runs"]] == ["3", "2"]
    assert e["gap"] == pytest.approx(0.14) and e["raw_gap"] == pytest.approx(0.14)
    assert e["traffic"]["predictions_in_window"] == 100
    assert e["traffic"]["per_hour"] == pytest.approx(100 / 24) and e["traffic"]["expected"] == pytest.approx(3000)
    assert e["error_cost"] == 1.5 and e["expected_loss"] == pytest.approx(630.0)
    cost = e["retrain_cost"]
    assert cost["fixed"] == 400 and cost["cost_per_hour"] == 50 and cost["n_durations"] == 2
    assert cost["mean_duration_s"] == pytest.approx(3600.0) and cost["compute"] == pytest.approx(50.0)
    assert cost["total"] == pytest.approx(450.0) and e["net_benefit"] == pytest.approx(180.0)
    assert d.value == pytest.approx(630.0) and d.threshold == pytest.approx(450.0)
    assert "0.800 (realized) vs 0.940" in d.reason and "630.0 > 450.0" in d.reason


def test_fires_just_above_the_boundary_and_not_at_it():
    loss = CostBenefitTrigger(PARAMS).evaluate(ctx_for()).value
    below = CostBenefitTrigger({**PARAMS, "cost_per_hour": None, "retrain_cost": loss * (1 - 1e-9)})
    at = CostBenefitTrigger({**PARAMS, "cost_per_hour": None, "retrain_cost": loss})
    assert below.evaluate(ctx_for()).status == "fired"
    d = at.evaluate(ctx_for())
    assert d.status == "ok" and d.value == d.threshold and "does not pay" in d.reason
    # The horizon scales the loss linearly: 450 / 630 x 30d = 21.43d is where it crosses.
    assert CostBenefitTrigger({**PARAMS, "horizon": "22d"}).evaluate(ctx_for()).fired
    assert not CostBenefitTrigger({**PARAMS, "horizon": "21d"}).evaluate(ctx_for()).fired
    # Cost per hour counts: at 250/h the compute alone is 250, and 400 + 250 > 630.
    assert not CostBenefitTrigger({**PARAMS, "cost_per_hour": 250}).evaluate(ctx_for()).fired


def test_a_champion_better_than_a_fresh_model_expects_no_loss():
    d = CostBenefitTrigger({**PARAMS, "retrain_cost": 0, "cost_per_hour": None}).evaluate(ctx_for(day_log(errors=2)))
    assert d.evidence["raw_gap"] == pytest.approx(0.94 - 0.98)
    assert d.evidence["gap"] == 0.0 and d.value == 0.0 and d.status == "ok"  # 0 > 0 is false: never on nothing


def test_other_metrics_are_read_from_the_runs_and_the_labels():
    d = CostBenefitTrigger({**PARAMS, "metric": "f1"}).evaluate(ctx_for())
    # Champion f1 with 80 TP, 20 FN, 0 FP: 160 / 180.
    assert d.evidence["champion"]["value"] == pytest.approx(160 / 180)
    assert d.evidence["gap"] == pytest.approx(0.9 - 160 / 180)
    assert d.value == pytest.approx((0.9 - 160 / 180) * 3000 * 1.5)


def test_no_look_ahead_a_run_or_label_after_now_is_invisible():
    future_run = RetrainRecord(NOW + timedelta(seconds=1), {"accuracy": 1.0}, duration_s=1.0, version="9")
    # Predictions made after now, and labels of the window that arrive after now: all wrong.
    late = day_log(errors=100)
    late["labelled_at"] = NOW + timedelta(hours=1)
    future = day_log(n=50, errors=50, end=NOW + timedelta(days=1))
    poisoned = pd.concat([day_log(), late.assign(ts=late["ts"] + timedelta(seconds=1)), future])
    poisoned["labelled_at"] = poisoned["labelled_at"].fillna(poisoned["ts"])
    clean = CostBenefitTrigger(PARAMS).evaluate(ctx_for())
    dirty = CostBenefitTrigger(PARAMS).evaluate(ctx_for(poisoned, retrains=(*RETRAINS, future_run)))
    assert dirty.evidence["fresh"] == clean.evidence["fresh"]
    assert dirty.evidence["champion"]["value"] == clean.evidence["champion"]["value"]
    assert dirty.value == pytest.approx(200 / 100 * clean.value)  # traffic counts every prediction of the window
    # A run finishing exactly at now is visible (same rule as labels: as_of inclusive).
    at_now = RetrainRecord(NOW, {"accuracy": 1.0}, version="8")
    d = CostBenefitTrigger(PARAMS).evaluate(ctx_for(retrains=(*RETRAINS, at_now)))
    assert d.evidence["fresh"]["runs"][0]["version"] == "8"


def test_the_context_clamps_a_source_that_ignores_as_of():
    class Sloppy(InMemoryWindowSource):
        def retrain_history(self, model_name, *, as_of, limit=10):  # noqa: ANN001, ANN201
            return list(self._retrains)  # ignores as_of and the order

    future = RetrainRecord(NOW + timedelta(days=1), {"accuracy": 1.0}, version="9")
    src = Sloppy(day_log(), retrains=(RETRAINS[1], future, RETRAINS[0]))
    ctx = make_context(source=src, now=NOW, champion=CHAMPION)
    assert [r.version for r in ctx.retrain_history()] == ["3", "2"]
    assert [r.version for r in ctx.retrain_history(1)] == ["3"]
    with pytest.raises(TypeError):
        ctx.retrain_history()[0].metrics["accuracy"] = 0.0  # read-only
    with pytest.raises(ValueError, match="positive"):
        ctx.retrain_history(0)


def test_composes_in_any_of_and_at_least():
    cb = CostBenefitTrigger(PARAMS)
    quiet = CostBenefitTrigger({**PARAMS, "retrain_cost": 10_000}, label="quiet")
    never_due = ScheduleTrigger({"interval": "365d"})
    ctx = make_context(day_log(), now=NOW, champion=CHAMPION, retrains=RETRAINS, last_retrain_at=NOW - timedelta(days=1))
    assert AnyOf([never_due, cb]).evaluate(ctx).fired
    assert not AnyOf([never_due, quiet]).evaluate(ctx).fired
    d = AtLeast(2, [never_due, cb, quiet]).evaluate(ctx)
    assert not d.fired and list(d.evidence["counted"]) == ["cost_benefit"]
    child = next(c for c in d.evidence["children"] if c["trigger"] == "cost_benefit")
    assert child["evidence"]["expected_loss"] == pytest.approx(630.0)
    # Through the config and the entry point, as retrainer.yaml would name it.
    policy = build_policy([{"type": "cost_benefit", **PARAMS}, {"type": "schedule", "interval": "365d"}],
                          PolicyConfig(mode="at_least", k=1, cooldown="0s"))
    result = policy.check(ctx)
    assert result.should_retrain and result.reasons == ["cost_benefit"]


def test_insufficient_data_paths():
    t = CostBenefitTrigger(PARAMS)
    few = t.evaluate(ctx_for(day_log(n=40, errors=8)))
    assert few.status == "insufficient_data" and "only 40 labelled" in few.reason and few.value is None
    nothing = t.evaluate(ctx_for(retrains=()))
    assert nothing.status == "insufficient_data" and "No past retrain" in nothing.reason
    assert nothing.evidence["fresh"] == {"source": None}
    # roc_auc is undefined with one class present.
    auc = CostBenefitTrigger({**PARAMS, "metric": "roc_auc"}).evaluate(ctx_for())
    assert auc.status == "insufficient_data" and "roc_auc is undefined" in auc.reason
    # The champion is judged on its own predictions: the predecessor's do not count.
    other = t.evaluate(ctx_for(day_log(version="2")))
    assert other.status == "insufficient_data" and other.evidence["champion"]["n_labelled"] == 0


def test_without_past_retrains_the_champions_stored_holdout_is_the_fresh_figure():
    reference = {"holdout_metrics": {"accuracy": 0.94, "f1": 0.9}}
    d = CostBenefitTrigger(PARAMS).evaluate(ctx_for(retrains=(), reference=reference))
    assert d.evidence["fresh"] == {"source": "reference_profile", "value": 0.94, "se": 0.0, "version": "3"}
    assert d.evidence["expected_loss"] == pytest.approx(630.0)
    # No durations known: only the fixed cost.
    assert d.evidence["retrain_cost"]["mean_duration_s"] is None and d.threshold == 400.0
    # A source that does not know retrain history (the plain WindowSource protocol) is the same case.
    class PlainSource:
        def __init__(self) -> None:
            self.inner = InMemoryWindowSource(day_log())

        def features_window(self, *a, **k):  # noqa: ANN002, ANN003, ANN201
            return self.inner.features_window(*a, **k)

        def labelled_window(self, *a, **k):  # noqa: ANN002, ANN003, ANN201
            return self.inner.labelled_window(*a, **k)

        def count_predictions(self, *a, **k):  # noqa: ANN002, ANN003, ANN201
            return self.inner.count_predictions(*a, **k)

    plain = TriggerContext("model", NOW, source=PlainSource(), champion=CHAMPION, reference=reference)
    assert plain.retrain_history() == ()
    assert CostBenefitTrigger(PARAMS).evaluate(plain) == d


def test_conformance_kit():
    check_trigger(CostBenefitTrigger)
    check_trigger(CostBenefitTrigger, params=PARAMS, contexts={"fires": ctx_for(), "no_runs": ctx_for(retrains=())})


def test_params_are_validated():
    from retrainer.errors import InvalidTriggerParams

    for bad in ({"error_cost": 0}, {"retrain_cost": -1}, {"cost_per_hour": -5}, {"metric": "mse"}, {"retrains": 0}):
        with pytest.raises(InvalidTriggerParams):
            CostBenefitTrigger(bad)


def test_the_store_serves_retrain_history_clamped_and_trained_runs_only(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.init()

    def run(at: datetime, status: str, metrics: dict | None, model: str = "m") -> None:
        rid = store.start_run(model, flow_run_id=None, reasons=["x"], started_at=at)
        store.finish_run(rid, status=status, metrics=metrics, version=None, error=None, finished_at=at)

    run(NOW - timedelta(days=3), "success", {"candidate": {"accuracy": 0.9}, "duration_s": 12.5, "gate": None})
    run(NOW - timedelta(days=2), "failed", None)
    run(NOW - timedelta(days=1), "no_improvement", {"candidate": {"accuracy": 0.7}})  # older run: no duration
    run(NOW - timedelta(hours=1), "success", {"candidate": {"accuracy": 0.99}}, model="other")
    run(NOW + timedelta(days=1), "success", {"candidate": {"accuracy": 1.0}, "duration_s": 1.0})
    history = store.retrain_history("m", as_of=NOW)
    assert [(r.status, r.metric("accuracy"), r.duration_s) for r in history] == [
        ("no_improvement", 0.7, None), ("success", 0.9, 12.5)]
    assert history[0].at == NOW - timedelta(days=1)
    assert len(store.retrain_history("m", as_of=NOW, limit=1)) == 1
    ctx = TriggerContext("m", NOW, source=store)
    assert ctx.retrain_history() == tuple(history)
    store.close()


def test_run_check_on_a_sql_store_reads_the_runs_and_the_labels(tmp_path):
    from retrainer.config import FeatureSpec, parse_config
    from retrainer.store import LabelRecord
    from retrainer.triggers.check import run_check

    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store.open(url)
    store.init()
    log = day_log()
    frame = pd.DataFrame({"request_id": [f"r{i}" for i in range(len(log))], "ts": log["ts"],
                          "prediction": log["y_pred"].astype(float), "model_version": "3", "x": 0.0})
    store.log_prediction_frame("m", frame, [FeatureSpec(name="x")])
    store.log_labels([LabelRecord(f"r{i}", float(y), t.to_pydatetime()) for i, (y, t) in enumerate(zip(log["y_true"], log["ts"]))])
    assert store.champion_cas("m", None, "3")
    for rec in RETRAINS:
        rid = store.start_run("m", flow_run_id=None, reasons=["x"], started_at=rec.at)
        store.finish_run(rid, status="success", metrics={"candidate": dict(rec.metrics), "duration_s": rec.duration_s},
                         version=rec.version, error=None, finished_at=rec.at)
    cfg = parse_config({"model": {"name": "m"}, "store": {"url": url}, "data": {"features": [{"name": "x"}]},
                        "triggers": [{"type": "cost_benefit", **PARAMS}], "policy": {"cooldown": "0s"}})
    result = run_check(cfg, store=store, now=NOW, write_audit=False)
    [d] = result.children
    assert result.should_retrain and d.fired
    assert d.evidence["expected_loss"] == pytest.approx(630.0) and d.evidence["retrain_cost"]["total"] == pytest.approx(450.0)
    # Thirty days earlier only the older run had finished, and no prediction was logged yet.
    earlier = run_check(cfg, store=store, now=NOW - timedelta(days=30), write_audit=False).children[0]
    assert [r["version"] for r in earlier.evidence["fresh"]["runs"]] == ["2"]
    # Nothing served in the window: nothing accrued against a retrain, so keep (a decision, not a lack of data).
    assert earlier.status == "ok" and earlier.value == 0 and "No prediction since" in earlier.reason
    store.close()


def late_labelled_log(n: int = 300, labelled: int = 10) -> pd.DataFrame:
    """``n`` scored predictions over the day before NOW; only the first ``labelled`` labels have arrived."""
    log = day_log(n=n, errors=0)
    score = np.linspace(0.05, 0.95, n)
    log["score"] = score
    log["y_pred"] = (score > 0.5).astype(int)
    log["y_true"] = (np.arange(n) % 3 != 0).astype(int)
    log["labelled_at"] = [t if i < labelled else NOW + timedelta(days=2) for i, t in enumerate(log["ts"])]
    return log


# Platt on the logit with a = 1, b = 0 is the identity: the calibrated probability is the score.
IDENTITY_MAP = {"version": 1, "method": "platt", "a": 1.0, "b": 0.0, "input": "logit"}


def test_with_too_few_labels_the_champion_is_the_label_free_estimate():
    log = late_labelled_log()
    ref = {"calibration": IDENTITY_MAP, "holdout_metrics": {"accuracy": 0.94}}
    d = CostBenefitTrigger(PARAMS).evaluate(ctx_for(log, reference=ref))
    s, pred, y = log["score"].to_numpy(), log["y_pred"].to_numpy(), log["y_true"].to_numpy()
    # Expected accuracy by hand: an arrived label counts as it is; otherwise P(correct) = s or 1 - s.
    known = np.arange(len(log)) < 10
    p_correct = np.where(known, (y == pred).astype(float), np.where(pred == 1, s, 1 - s))
    expected = float(p_correct.mean())
    c = d.evidence["champion"]
    assert c["source"] == "estimated" and c["n_labelled"] == 10 and c["n_scored"] == 300
    assert c["value"] == pytest.approx(expected, abs=1e-12) and c["realized_share"] == pytest.approx(10 / 300)
    assert c["ci"][0] < expected < c["ci"][1] and c["calibration"] == "platt"
    gap = 0.94 - expected
    assert d.evidence["gap"] == pytest.approx(gap) and d.evidence["traffic"]["expected"] == pytest.approx(9000)
    assert d.value == pytest.approx(gap * 9000 * 1.5)
    assert "(estimated) vs 0.940" in d.reason
    # Enough labels: realized wins, the estimate is not consulted.
    realized = CostBenefitTrigger({**PARAMS, "min_samples": 5}).evaluate(ctx_for(log, reference=ref))
    assert realized.evidence["champion"]["source"] == "realized" and realized.evidence["champion"]["n_labelled"] == 10


def test_too_few_labels_and_no_calibration_map_says_both():
    d = CostBenefitTrigger(PARAMS).evaluate(ctx_for(late_labelled_log(), reference={"holdout_metrics": {"accuracy": 0.9}}))
    assert d.status == "insufficient_data"
    assert "only 10 labelled predictions" in d.reason and "no estimate (Cannot estimate performance" in d.reason
    assert d.evidence["champion"]["estimate_unavailable"].startswith("Cannot estimate performance")


# -- the break-even rule (no horizon): the bar, the exact standard error, low volume ----------------





Z95 = 1.6448536269514722  # Φ⁻¹(0.95)


def spread_log(correct, *, days: float, end: datetime = NOW, version: str = "3") -> pd.DataFrame:
    """One prediction per entry of ``correct`` (1 right, 0 wrong), evenly over the ``days`` before
    ``end``, labelled at once (y_true 1, y_pred = correct)."""
    correct = np.asarray(correct, dtype=int)
    n = len(correct)
    ts = [end - timedelta(days=days) + (i + 0.5) * timedelta(days=days) / n for i in range(n)]
    return pd.DataFrame({"ts": ts, "model_version": version, "y_true": 1, "y_pred": correct, "x": 0.0})


def break_even_ctx(log, *, runs=(), own=None, days: float = 30.0, last_retrain_at=None):
    """A champion deployed ``days`` ago (its window: since then), ``runs`` as (days ago, accuracy)
    past candidates, ``own`` its own holdout accuracy in its reference profile."""
    champion = ChampionInfo("3", created_at=NOW - timedelta(days=days))
    retrains = tuple(RetrainRecord(NOW - timedelta(days=d), {"accuracy": a}, version=f"r{d}") for d, a in runs)
    reference = None if own is None else {"holdout_metrics": {"accuracy": own}}
    return make_context(log, now=NOW, champion=champion, retrains=retrains, reference=reference,
                        last_retrain_at=last_retrain_at)


def exact_sd(n: int, rates: list[float], early: list[int], window: list[int]) -> float:
    """Brute force: every outcome of ``n`` independent labels (label i right with ``rates[i]``); the
    standard deviation of mean(early labels) − mean(window labels)."""
    diffs, probs = [], []
    for outcome in product((0, 1), repeat=n):
        probs.append(np.prod([r if o else 1 - r for r, o in zip(rates, outcome)]))
        diffs.append(np.mean([outcome[i] for i in early]) - np.mean([outcome[i] for i in window]))
    d, w = np.array(diffs), np.array(probs)
    return math.sqrt(float(w @ d**2 - (w @ d) ** 2))


def test_early_gap_se_is_the_exact_standard_error_of_early_minus_window():
    # Early inside the window: 2 labels at 0.9, then 4 at 0.6, the window all 6.
    rates = [0.9, 0.9, 0.6, 0.6, 0.6, 0.6]
    assert early_gap_se((0, 0.0), (2, 0.9), (4, 0.6)) == pytest.approx(exact_sd(6, rates, [0, 1], list(range(6))), rel=1e-12)
    # Early before the window (a retrain the gate rejected restarted it): disjoint.
    assert early_gap_se((2, 0.9), (0, 0.0), (4, 0.6)) == pytest.approx(exact_sd(6, rates, [0, 1], [2, 3, 4, 5]), rel=1e-12)
    # Partly overlapping: early = labels 0-2, window = labels 2-5 (each group at one rate).
    rates = [0.9, 0.9, 0.7, 0.6, 0.6, 0.6]
    assert early_gap_se((2, 0.9), (1, 0.7), (3, 0.6)) == pytest.approx(exact_sd(6, rates, [0, 1, 2], [2, 3, 4, 5]), rel=1e-12)
    # Independent-samples arithmetic would overstate the nested case by √2 at f = 1/3 (equal rates).
    naive = math.hypot(math.sqrt(0.2 * 0.8 / 300), math.sqrt(0.2 * 0.8 / 100))
    assert naive / early_gap_se((0, 0.0), (100, 0.8), (200, 0.8)) == pytest.approx(math.sqrt(2))
    with pytest.raises(ValueError, match="labels on both sides"):
        early_gap_se((0, 0.0), (0, 0.0), (10, 0.5))


def test_break_even_arithmetic_by_hand():
    # 300 predictions over 30 days: the first 100 (the early third) 90% right, the last 200 75% right.
    correct = np.r_[np.arange(100) % 10 != 0, np.arange(200) % 4 != 0]
    ctx = break_even_ctx(spread_log(correct, days=30), runs=[(30, 0.86), (60, 0.90)], own=0.86)
    d = CostBenefitTrigger({"retrain_cost": 10}).evaluate(ctx)
    e = d.evidence
    assert e["rule"] == "break_even" and e["champion"]["value"] == pytest.approx(0.80)
    assert e["champion"]["early"]["value"] == pytest.approx(0.90) and e["champion"]["early"]["n"] == 100
    # Bar: early 0.90 + (mean holdout of the runs 0.88 − the champion's own holdout 0.86) = 0.92.
    f = e["fresh"]
    assert f["value"] == pytest.approx(0.88) and f["own_holdout"] == 0.86 and f["own_holdout_source"] == "reference_profile"
    assert f["shift"] == pytest.approx(0.02) and f["bar"] == pytest.approx(0.92) and f["used"] == "early+shift"
    assert e["raw_gap"] == pytest.approx(0.12) and e["traffic"]["predictions_in_window"] == 300
    se = (2 / 3) * math.sqrt(0.75 * 0.25 / 200 + 0.9 * 0.1 / 100) * 300
    assert e["excess"] == pytest.approx(36.0) and e["excess_se"] == pytest.approx(se)
    assert e["excess_low"] == pytest.approx(36.0 - Z95 * se) and d.status == "fired"
    # Just above and at the bound: the cost decides.
    bound = 36.0 - Z95 * se
    assert CostBenefitTrigger({"retrain_cost": bound * (1 - 1e-9)}).evaluate(ctx).fired
    assert not CostBenefitTrigger({"retrain_cost": bound * (1 + 1e-9)}).evaluate(ctx).fired
    # 0.5 confidence: on the point estimate.
    assert CostBenefitTrigger({"retrain_cost": 35.9, "confidence": 0.5}).evaluate(ctx).fired
    assert not CostBenefitTrigger({"retrain_cost": 36.0, "confidence": 0.5}).evaluate(ctx).fired


def test_a_flattering_holdout_does_not_accrue_into_retrains():
    # Realized accuracy a constant 85% (every 20th and 20th+7th wrong); the candidates all scored 0.95 on holdout.
    correct = (np.arange(600) % 20 != 0) & (np.arange(600) % 20 != 7) & (np.arange(600) % 20 != 13)
    ctx = break_even_ctx(spread_log(correct, days=60), runs=[(60, 0.95)], own=0.95, days=60)
    d = CostBenefitTrigger({"retrain_cost": 1}).evaluate(ctx)
    # Holdout against holdout: no shift; the bar is the champion's own early figure; no decay, no excess.
    assert d.evidence["fresh"]["shift"] == 0.0 and d.evidence["fresh"]["used"] == "early"
    assert d.evidence["raw_gap"] == pytest.approx(0.0, abs=0.01) and d.status == "ok"


def test_a_champion_stale_from_birth_fires_on_what_later_candidates_reached():
    # No decay (a constant 80%), but the candidates around it scored 0.08 higher than it did on holdout.
    correct = np.arange(3000) % 5 != 0
    ctx = break_even_ctx(spread_log(correct, days=10), runs=[(10, 0.80), (20, 0.92), (30, 0.92)], own=0.80, days=10)
    d = CostBenefitTrigger({"retrain_cost": 100}).evaluate(ctx)
    f = d.evidence["fresh"]
    assert f["shift"] == pytest.approx(0.88 - 0.80) and f["bar"] == pytest.approx(0.80 + 0.08)
    assert d.evidence["excess"] == pytest.approx(0.08 * 3000) and d.status == "fired"


def test_before_the_champion_has_an_early_figure_the_bar_is_the_fresh_figure():
    # 50 labels (< 2 x min_samples): no early third yet.
    correct = np.arange(50) % 5 != 0
    ctx = break_even_ctx(spread_log(correct, days=5), runs=[(5, 0.9)], own=0.9, days=5)
    d = CostBenefitTrigger({"retrain_cost": 1}).evaluate(ctx)
    assert "early" not in d.evidence["champion"] and d.evidence["fresh"]["used"] == "retrain_runs"
    assert d.evidence["raw_gap"] == pytest.approx(0.1) and d.evidence["excess"] == pytest.approx(5.0)
    assert d.evidence["excess_se"] == pytest.approx(math.sqrt(0.8 * 0.2 / 50) * 50)
    assert d.status == "ok"  # 5 − 1.645 x 2.83 = 0.35 < 1


def test_at_five_predictions_a_day_noise_does_not_fire_and_a_real_decay_does():
    rng = np.random.default_rng(21)
    fired = 0
    for _ in range(300):  # 90 days x 5 a day, a constant 80% right: no gap
        correct = rng.random(450) < 0.8
        ctx = break_even_ctx(spread_log(correct, days=90), runs=[(90, 0.8)], own=0.8, days=90)
        fired += CostBenefitTrigger({"retrain_cost": 5}).evaluate(ctx).fired
    assert fired / 300 <= 0.05  # the 95% bound, and a cost on top of it
    # Clearly decayed: 90% right for 30 days, then 60% for 60 days (5 a day).
    correct = np.r_[np.arange(150) % 10 != 0, np.arange(300) % 5 >= 2]
    d = CostBenefitTrigger({"retrain_cost": 5}).evaluate(break_even_ctx(spread_log(correct, days=90), days=90))
    assert d.evidence["champion"]["early"]["value"] == pytest.approx(0.9)
    assert d.evidence["raw_gap"] == pytest.approx(0.9 - 0.7) and d.evidence["excess"] == pytest.approx(90.0)
    assert d.status == "fired"


def test_a_rejected_retrain_restarts_the_accrual_but_not_the_bar():
    # 90 days at 10 a day: 90% right for the first 30, then 70%; a retrain 30 days ago was rejected.
    correct = np.r_[np.arange(300) % 10 != 0, np.arange(600) % 10 >= 3]
    ctx = break_even_ctx(spread_log(correct, days=90), days=90, last_retrain_at=NOW - timedelta(days=30))
    d = CostBenefitTrigger({"retrain_cost": 20}).evaluate(ctx)
    early, champ = d.evidence["champion"]["early"], d.evidence["champion"]
    # The window (accrual) is the 30 days since the retrain; the bar is still the first third of the champion's life.
    assert champ["n_labelled"] == 300 and champ["value"] == pytest.approx(0.7)
    assert early["n"] == 300 and early["value"] == pytest.approx(0.9) and early["n_in_window"] == 0
    assert early["gap_se"] == pytest.approx(math.sqrt(0.9 * 0.1 / 300 + 0.7 * 0.3 / 300))  # disjoint samples
    assert d.evidence["excess"] == pytest.approx(0.2 * 300) and d.status == "fired"
