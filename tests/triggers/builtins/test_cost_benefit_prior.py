"""cost_benefit's decay prior (issue 21): the rate learnt from past retrains' paired offline
differences, its significance gate, and the break-even decision it makes when the window's own
figures cannot — at five predictions a day, and never on a model that does not decay."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from retrainer.store import Store
from retrainer.testing import make_context
from retrainer.triggers import ChampionInfo, TriggerContext
from retrainer.triggers.cost_benefit import CostBenefitTrigger
from retrainer.triggers.decay_prior import decay_points, decay_prior
from retrainer.windows import RetrainRecord

NOW = datetime(2025, 3, 1, tzinfo=timezone.utc)
YEAR = 365.0


def runs(points, *, metric: str = "accuracy") -> tuple[RetrainRecord, ...]:
    """Past retrains, one per (champion age in days, Δ_off), one after another back from 400 days ago."""
    out, end = [], NOW - timedelta(days=400)
    for age, delta in points:
        out.append(RetrainRecord(end, {metric: 0.8}, version=f"v{len(out)}", offline_delta={metric: delta},
                                 champion_since=end - timedelta(days=age)))
        end -= timedelta(days=age)
    return tuple(out)


def steady_log(days: int = 400, per_day: int = 5, accuracy: float = 0.8) -> pd.DataFrame:
    """``per_day`` predictions a day for ``days`` up to NOW, a constant share right (every 5th wrong at 0.8)."""
    n = days * per_day
    ts = [NOW - timedelta(days=days) + (i + 0.5) * timedelta(days=days) / n for i in range(n)]
    right = (np.arange(n) % 5 != 0) if accuracy == 0.8 else (np.arange(n) % 10 != 0)
    return pd.DataFrame({"ts": ts, "model_version": "3", "y_true": 1, "y_pred": right.astype(int), "x": 0.0})


def ctx(retrains, *, days: int = 400, log=None) -> TriggerContext:
    champion = ChampionInfo("3", created_at=NOW - timedelta(days=days))
    return make_context(steady_log(days) if log is None else log, now=NOW, champion=champion, retrains=retrains)


def test_the_rate_is_the_least_squares_slope_through_the_origin():
    points = [(365, 0.021), (200, 0.009), (500, 0.031), (90, -0.004)]
    prior = decay_prior(runs(points), "accuracy")
    ages, deltas = np.array(points).T
    ols = sm.OLS(deltas, ages).fit()  # no constant: Δ_off = r · age
    assert prior.n == 4 and prior.df == 3
    assert prior.rate == pytest.approx(ols.params[0], rel=1e-12) and prior.se == pytest.approx(ols.bse[0], rel=1e-12)


def test_only_retrains_with_a_delta_and_a_champion_age_count():
    t = NOW - timedelta(days=10)
    records = [
        RetrainRecord(t, offline_delta={"accuracy": 0.01}, champion_since=t - timedelta(days=100)),
        RetrainRecord(t, offline_delta={"f1": 0.01}, champion_since=t - timedelta(days=100)),  # other metric
        RetrainRecord(t, offline_delta={"accuracy": 0.01}),  # age unknown
        RetrainRecord(t, champion_since=t - timedelta(days=5)),  # no delta (an older run)
        RetrainRecord(t, offline_delta={"accuracy": 0.01}, champion_since=t),  # age 0
    ]
    assert decay_points(records, "accuracy") == [(100.0, 0.01)]
    assert decay_prior(records, "accuracy") is None  # one point: no slope and no spread


def test_at_five_predictions_a_day_a_decaying_model_fires_on_its_prior():
    # Accuracy flat at 0.8 for 400 days (5 a day): the window shows no decay. Past retrains measured a
    # fresh model gaining ~0.02 a year of the champion's age.
    history = runs([(365, 0.021), (200, 0.009), (500, 0.031), (300, 0.015)])
    d = CostBenefitTrigger({"retrain_cost": 5}).evaluate(ctx(history))
    p = d.evidence["prior"]
    ages, deltas = np.array([(365, 0.021), (200, 0.009), (500, 0.031), (300, 0.015)]).T
    ols = sm.OLS(deltas, ages).fit()
    t = stats.t.ppf(0.8, 3)
    assert p["status"] == "used" and p["n"] == 4 and p["t"] == pytest.approx(t)
    assert p["rate_per_day"] == pytest.approx(ols.params[0]) and p["se_per_day"] == pytest.approx(ols.bse[0])
    # Window = the champion's life: mean age 200 days; gap 200·r; excess gap × 2,000 predictions × 1.
    assert p["mean_age_days"] == pytest.approx(200.0)
    assert p["gap"] == pytest.approx(200 * ols.params[0]) and p["excess"] == pytest.approx(2000 * 200 * ols.params[0])
    assert d.evidence["excess_low"] < 5 < p["excess"]  # the window alone is not conclusive; the prior is
    assert d.status == "fired" and "decay prior" in d.reason
    # Below the prior's excess it stays quiet: the prior is a break-even decision too.
    assert not CostBenefitTrigger({"retrain_cost": p["excess"] * 1.001}).evaluate(ctx(history)).fired
    assert CostBenefitTrigger({"retrain_cost": p["excess"] * 0.999}).evaluate(ctx(history)).fired
    # Off: the same history does not fire.
    off = CostBenefitTrigger({"retrain_cost": 5, "prior_retrains": 0}).evaluate(ctx(history))
    assert off.status == "ok" and off.evidence["prior"]["status"] == "off"


def test_a_model_that_does_not_decay_never_fires_on_its_prior():
    # Past retrains found fresh models no better on average (symmetric differences around 0).
    flat = runs([(365, 0.02), (200, -0.01), (500, -0.02), (300, 0.01), (250, -0.005)])
    d = CostBenefitTrigger({"retrain_cost": 5}).evaluate(ctx(flat))
    assert d.evidence["prior"]["status"] == "not_significant" and d.status == "ok"
    # Random histories of a model that does not decay: Δ_off ~ N(0, 0.015) at ages 30-900 days,
    # 3-10 retrains, at 5 predictions a day. The gate lets through what its 0.8 confidence allows,
    # and the break-even on the (small) rate it lets through must still pay.
    rng = np.random.default_rng(21)
    fired = gated = 0
    trials = 300
    for _ in range(trials):
        m = int(rng.integers(3, 11))
        points = list(zip(rng.uniform(30, 900, m), rng.normal(0, 0.015, m)))
        e = CostBenefitTrigger({"retrain_cost": 5}).evaluate(ctx(runs(points)))
        gated += e.evidence["prior"]["status"] == "used"
        fired += e.fired
    # Measured: 56 of 300 through the gate (the 20% it allows), 29 fired (a champion 400 days old).
    assert gated / trials <= 0.2 + 3 * (0.2 * 0.8 / trials) ** 0.5
    assert fired <= gated and fired / trials <= 0.12


def test_too_few_retrains_or_an_unknown_champion_start_use_no_prior():
    two = runs([(365, 0.05), (300, 0.04)])
    d = CostBenefitTrigger({"retrain_cost": 5}).evaluate(ctx(two))
    assert d.evidence["prior"]["status"] == "too_few_retrains" and d.evidence["prior"]["n"] == 2 and d.status == "ok"
    history = runs([(365, 0.021), (200, 0.009), (500, 0.031), (300, 0.015)])
    champion = ChampionInfo("3", created_at=None)
    c = make_context(steady_log(), now=NOW, champion=champion, retrains=history)
    d = CostBenefitTrigger({"retrain_cost": 5, "window": "400d"}).evaluate(c)
    assert d.evidence["prior"]["status"] == "champion_start_unknown"


def test_the_store_history_carries_the_paired_delta_and_the_champions_start(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.init()

    def run(at: datetime, status: str, metrics: dict | None) -> None:
        rid = store.start_run("m", flow_run_id=None, reasons=["x"], started_at=at)
        store.finish_run(rid, status=status, metrics=metrics, version=None, error=None, finished_at=at)

    first = NOW - timedelta(days=300)
    run(first, "success", {"candidate": {"accuracy": 0.9}})  # the first model: no champion
    run(NOW - timedelta(days=100), "no_improvement",
        {"candidate": {"accuracy": 0.84, "f1": 0.8}, "champion": {"accuracy": 0.86, "f1": None}})
    run(NOW - timedelta(days=10), "success", {"candidate": {"accuracy": 0.88}, "champion": {"accuracy": 0.85}})
    latest, rejected, oldest = store.retrain_history("m", as_of=NOW)
    assert latest.offline_delta == pytest.approx({"accuracy": 0.03}) and latest.champion_since == first
    assert rejected.offline_delta == pytest.approx({"accuracy": -0.02}) and rejected.champion_since == first
    assert oldest.offline_delta is None and oldest.champion_since is None
    ctx = TriggerContext("m", NOW, source=store)
    assert [r.champion_since for r in ctx.retrain_history()] == [first, first, None]
    assert decay_points(ctx.retrain_history(), "accuracy") == [(290.0, pytest.approx(0.03)), (200.0, pytest.approx(-0.02))]
    store.close()
