"""`retrainer rollout plan`: the store measures the traffic it was given, and the forecast day matches a
direct simulation of the decision rule on that traffic (the real PPI estimate, update and decide)."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml

from retrainer.cli import main
from retrainer.config import FeatureSpec, parse_config
from retrainer.deployments.rollout.decision import decide, update
from retrainer.deployments.rollout.plan import (
    DEFAULT_DISAGREEMENT,
    PROXY_RESIDUAL_SHARE,
    Traffic,
    plan_for,
    plan_rollout,
)
from retrainer.stats.paired import ppi_paired_difference
from retrainer.store import LabelRecord, PredictionRecord, ShadowRecord, Store

AS_OF = datetime(2024, 3, 1, tzinfo=timezone.utc)
DAY = 86400.0
SPECS = [FeatureSpec(name="x")]
LABEL_RATE, DELAY = 0.7, (1.0, 5.0)  # 70 % of requests get a label, uniformly 1 to 5 days late
DISAGREE_EVERY = 5  # the shadow answers differently on every 5th request: 20 %


def _config(tmp_path: Path, **rollout) -> dict:
    return {"model": {"name": "m"}, "store": {"url": f"sqlite:///{tmp_path / 'store.db'}"},
            "data": {"source": {"table": "t"}, "features": [{"name": "x"}]}, "rollout": rollout}


def _world(tmp_path: Path, *, per_day: int, days: int = 21, offline: dict | None = None, shadow_days: int = 7,
           seed: int = 0) -> Store:
    """``per_day`` requests a day, evenly spaced, for ``days`` days before AS_OF; labels and a shadow as above."""
    rng = np.random.default_rng(seed)
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.init()
    n = per_day * days
    start = AS_OF.timestamp() - days * DAY
    ts = start + np.arange(n) * (DAY / per_day)
    when = [datetime.fromtimestamp(t, tz=timezone.utc) for t in ts]
    y = rng.integers(0, 2, n)
    pred = np.where(rng.random(n) < 0.8, y, 1 - y)  # a champion right 80 % of the time
    store.log_predictions("m", [PredictionRecord(f"r{i}", {"x": float(i)}, float(pred[i]), when[i], model_version="1")
                                for i in range(n)], SPECS)
    labelled = rng.random(n) < LABEL_RATE
    arrive = ts + rng.uniform(*DELAY, n) * DAY
    store.log_labels([LabelRecord(f"r{i}", float(y[i]), datetime.fromtimestamp(arrive[i], tz=timezone.utc))
                      for i in range(n) if labelled[i]], received_at=datetime(2030, 1, 1, tzinfo=timezone.utc))
    shadow_from = n - per_day * shadow_days
    store.record_shadow([ShadowRecord("m", f"r{i}", "1", "2", float(pred[i]),
                                      float(1 - pred[i]) if i % DISAGREE_EVERY == 0 else float(pred[i]), when[i])
                         for i in range(shadow_from, n)])
    if offline is not None:
        run = store.start_run("m", flow_run_id="f", reasons=["drift"], started_at=AS_OF - timedelta(days=8))
        store.finish_run(run, status="success", metrics={"offline_delta": offline}, version="2", error=None,
                         finished_at=AS_OF - timedelta(days=8))
    return store


def _simulated_decision_day(per_day: float, q: float, delta: float, prior, rule, max_days: int,
                            rng: np.random.Generator) -> int | None:
    """Run the rule on simulated shadow traffic: each day, the labelled pairs that have arrived and the
    label-free proxies of the rest, PPI, the normal update, decide. A calibrated proxy whose residual
    variance is PROXY_RESIDUAL_SHARE of the pair variance (the plan's assumption)."""
    n = int(per_day * max_days)
    ts = np.sort(rng.uniform(0, max_days, n))
    disagree = rng.random(n) < q
    half = math.sqrt(0.25 - PROXY_RESIDUAL_SHARE / 4)  # P(chal right | disagree) = 0.5 ± half: 4p(1-p) = share
    high = rng.random(n) < (delta / q / (2 * half) + 1) / 2  # so that E[d] = delta
    p_right = np.where(high, 0.5 + half, 0.5 - half)
    d = np.where(disagree, np.where(rng.random(n) < p_right, 1.0, -1.0), 0.0)
    proxy = np.where(disagree, 2 * p_right - 1, 0.0)
    labelled = rng.random(n) < LABEL_RATE
    arrive = ts + rng.uniform(*DELAY, n)
    for day in range(max_days + 1):
        seen = ts < day
        lab = seen & labelled & (arrive <= day)
        est = ppi_paired_difference(d[lab], proxy[lab], proxy[seen & ~lab]) if lab.sum() >= 2 else None
        if decide(update(prior, est), rule, n_labelled=int(lab.sum())).action != "continue":
            return day
    return None


@pytest.fixture(scope="module")
def busy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("busy")
    store = _world(tmp, per_day=200, offline={"metric": "f1", "mean": 0.04, "se": 0.01, "n": 900,
                                              "interval_95": [0.02, 0.06], "disagreement": 0.25})
    yield tmp, store
    store.close()


def test_the_store_measures_the_traffic_it_was_given(busy):
    _, store = busy
    m = store.traffic("m", as_of=AS_OF, lookback=timedelta(days=14), shadow_version="2")
    assert m.days == pytest.approx(14.0, abs=1e-6) and m.requests_per_day == pytest.approx(200, abs=0.5)
    assert m.label_rate == pytest.approx(LABEL_RATE, abs=0.03) and m.n_matured > 1500
    assert m.label_delay_p50_days == pytest.approx(3.0, abs=0.15)  # uniform 1..5 days
    assert m.label_delay_p95_days == pytest.approx(4.8, abs=0.15)
    assert m.disagreement == pytest.approx(1 / DISAGREE_EVERY, abs=1e-3) and m.n_shadow_pairs == 1400
    assert m.champion_accuracy == pytest.approx(0.8, abs=0.03)
    # Nothing from after as_of: a week earlier the shadow had not started and fewer labels were in.
    early = store.traffic("m", as_of=AS_OF - timedelta(days=7), lookback=timedelta(days=14), shadow_version="2")
    assert early.n_shadow_pairs == 0 and early.disagreement is None and early.requests_per_day == pytest.approx(200, abs=0.5)
    # A young log counts its own days, not the lookback's.
    young = store.traffic("m", as_of=AS_OF - timedelta(days=16), lookback=timedelta(days=14))
    assert young.days == pytest.approx(5.0, abs=1e-3) and young.requests_per_day == pytest.approx(200, abs=0.5)
    assert "lower bound" not in young.label_rate_basis  # 5 days of log: some predictions have matured


def test_the_forecast_day_matches_a_direct_simulation_of_the_rule(busy):
    tmp, store = busy
    cfg = parse_config(_config(tmp), environ={})
    plan, context = plan_for(cfg, store, as_of=AS_OF)
    assert context["version"] == "2" and context["offline"]["mean"] == 0.04
    assert plan.mode == "shadow" and "paired shadow" in plan.mode_reason
    assert plan.traffic.disagreement == pytest.approx(0.2, abs=1e-3)
    assert "shadow pairs of this challenger" in plan.traffic.disagreement_source
    assert plan.labelled_per_day == pytest.approx(200 * LABEL_RATE, rel=0.05)
    assert plan.unlabelled_per_day == pytest.approx(200, abs=0.5)
    assert plan.prior.mean == pytest.approx(0.5 * 0.04) and plan.prior.sd == pytest.approx(math.hypot(0.03, 0.01))
    assert plan.fits and plan.alternatives == []
    rng = np.random.default_rng(42)
    days = [_simulated_decision_day(200, 0.2, plan.prior.mean, plan.prior, plan.rule, 42, rng) for _ in range(200)]
    decided = np.array([d for d in days if d is not None])
    median = float(np.median(decided))
    print(f"200/day: forecast day {plan.expected_days} (spread {plan.spread}, on the expected evidence "
          f"{plan.evidence_day}); direct simulation: median {median}, 10-90% {np.percentile(decided, [10, 90])}")
    assert len(decided) >= 190 and plan.spread.decided > 0.95
    assert abs(plan.expected_days - median) <= 1.5
    assert plan.spread.p10 <= np.percentile(decided, 10) + 2 and plan.spread.p90 >= np.percentile(decided, 90) - 4


@pytest.mark.parametrize(("per_day", "delta_off", "q"), [(1000, 0.02, 0.2), (1000, -0.02, 0.2), (200, 0.04, 0.05)])
def test_at_other_traffic_the_forecast_is_the_simulated_median_within_a_day_or_so(per_day, delta_off, q):
    from retrainer.deployments.rollout.decision import prior_from_offline

    cfg = parse_config({"model": {"name": "m"}, "data": {"source": {"table": "t"}, "features": [{"name": "x"}]}},
                       environ={})
    traffic = Traffic(per_day, LABEL_RATE, 3.0, q, "x", 0.8, "y")  # delay uniform 1..5 days: p50 3
    plan = plan_rollout(cfg.rollout, traffic, prior_from_offline(delta_off, 0.01))
    rng = np.random.default_rng(7)
    days = [_simulated_decision_day(per_day, q, plan.prior.mean, plan.prior, plan.rule, 42, rng) for _ in range(150)]
    decided = [d for d in days if d is not None]
    median = float(np.median(decided))
    print(f"{per_day}/day, Δ_off {delta_off}: forecast day {plan.expected_days} (on the expected evidence "
          f"{plan.evidence_day}), simulated median {median}")
    assert len(decided) >= 140 and abs(plan.expected_days - median) <= 1.5
    # A worse challenger is forecast to be rejected, a better one promoted.
    assert (plan.spread.promoted > 0.9) == (delta_off > 0) and (plan.spread.promoted < 0.1) == (delta_off < 0)


def test_low_traffic_says_it_will_not_decide_in_time_and_what_would(tmp_path):
    store = _world(tmp_path, per_day=50, offline={"metric": "f1", "mean": 0.02, "se": 0.01, "n": 900,
                                                  "interval_95": [0.0, 0.04], "disagreement": 0.2})
    cfg = parse_config(_config(tmp_path, shadow={"sample": 0.5}), environ={})
    plan, _ = plan_for(cfg, store, as_of=AS_OF)
    store.close()
    assert not plan.fits and plan.expected_days is None
    assert "no decision expected within max_duration 42d" in plan.summary and "never a rejection" in plan.summary
    by_key = {next(iter(a.settings)): a for a in plan.alternatives}
    share = by_key["rollout.shadow.sample"]
    assert share.settings == {"rollout.shadow.sample": 1.0} and "instead of 50%" in share.change
    longer = by_key["rollout.decision.max_duration"]
    assert longer.days is not None and longer.days > 42 and longer.settings["rollout.decision.max_duration"] == f"{longer.days}d"
    # Each suggestion, applied, is a plan that fits on the day it said.
    raw = _config(tmp_path, shadow={"sample": 0.5}, decision={"max_duration": f"{longer.days}d"})
    assert plan_rollout(parse_config(raw, environ={}).rollout, plan.traffic, plan.prior).expected_days == longer.days
    wider = by_key["rollout.decision.margin"]
    assert wider.days is not None and wider.days <= 42
    decision = {k.rsplit(".", 1)[1]: v for k, v in wider.settings.items()}
    again = plan_rollout(parse_config(_config(tmp_path, shadow={"sample": 0.5}, decision=decision), environ={}).rollout,
                         plan.traffic, plan.prior)
    assert again.fits and again.expected_days == wider.days


def test_ab_when_outcomes_depend_on_predictions_uses_the_split_and_the_champion_accuracy(busy):
    tmp, store = busy
    cfg = parse_config(_config(tmp, outcomes_depend_on_predictions=True, ab={"split": 0.2}), environ={})
    plan, _ = plan_for(cfg, store, as_of=AS_OF)
    assert plan.mode == "ab" and "A/B" in plan.mode_reason
    acc = plan.traffic.champion_accuracy
    assert plan.pair_variance == pytest.approx(acc * (1 - acc) / (0.2 * 0.8))
    assert plan.labelled_per_day == pytest.approx(200 * LABEL_RATE, rel=0.05) and plan.unlabelled_per_day == 0
    assert plan.proxy_residual_variance is None


def test_no_traffic_and_no_offline_result_are_said_to_be_assumptions(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}")
    store.init()
    cfg = parse_config(_config(tmp_path), environ={})
    plan, context = plan_for(cfg, store, as_of=AS_OF)
    store.close()
    assert context["version"] is None and context["measured"]["n_predictions"] == 0
    assert plan.traffic.disagreement == DEFAULT_DISAGREEMENT and "assumed" in plan.traffic.disagreement_source
    assert "no offline difference" in plan.prior.source and plan.prior.mean == 0
    assert plan.labelled_per_day == 0 and not plan.fits
    assert any("no decision expected within 365 days" in a.change for a in plan.alternatives)


def test_direct_mode_has_nothing_to_forecast():
    cfg = parse_config({"model": {"name": "m"}, "data": {"source": {"table": "t"}, "features": [{"name": "x"}]},
                        "rollout": {"mode": "direct"}}, environ={})
    traffic = Traffic(100, 0.5, 1.0, 0.1, "x", 0.8, "y")
    from retrainer.deployments.rollout.decision import prior_from_offline

    plan = plan_rollout(cfg.rollout, traffic, prior_from_offline(0.0, 0.01))
    assert plan.mode == "direct" and plan.fits and plan.expected_days == 0 and "promoted at once" in plan.mode_reason


def _cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_plan_json_shape_and_table(busy, capsys):
    tmp, _ = busy
    path = tmp / "retrainer.yaml"
    path.write_text(yaml.safe_dump(_config(tmp)))
    code, out, err = _cli(capsys, "rollout", "plan", "--config", str(path), "--at", AS_OF.isoformat(), "--json")
    assert code == 0, err
    d = json.loads(out)
    assert set(d) == {"model", "version", "champion", "as_of", "lookback_days", "measured", "offline", "plan"}
    assert set(d["plan"]) >= {"mode", "mode_reason", "traffic", "labelled_pairs_per_day", "unlabelled_pairs_per_day",
                              "prior", "rule", "expected_days", "days_if_no_better", "max_duration_days", "fits",
                              "alternatives", "summary"}
    assert d["plan"]["mode"] == "shadow" and d["version"] == "2" and d["lookback_days"] == 14
    assert d["measured"]["requests_per_day"] == pytest.approx(200, abs=0.5)
    code, out, _ = _cli(capsys, "rollout", "plan", "--config", str(path), "--at", AS_OF.isoformat(), "--version", "2")
    assert code == 0 and "rollout plan for m" in out and "decision expected" in out and "paired shadow" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--lookback", "a fortnight"], "--lookback"),
    (["--lookback", "0d"], "longer than zero"),
    (["--at", "yesterday"], "--at 'yesterday' is not an ISO-8601"),
])
def test_cli_plan_errors_are_one_line_exit_2(busy, capsys, argv, message):
    tmp, _ = busy
    path = tmp / "retrainer.yaml"
    path.write_text(yaml.safe_dump(_config(tmp)))
    code, out, err = _cli(capsys, "rollout", "plan", "--config", str(path), *argv)
    assert code == 2 and out == "" and message in err and err.count("\n") == 1, err


def test_cli_plan_without_a_config_is_one_line_exit_2(tmp_path, capsys):
    code, _, err = _cli(capsys, "rollout", "plan", "--config", str(tmp_path / "missing.yaml"))
    assert code == 2 and "does not exist" in err and err.count("\n") == 1
