"""The replay: no look-ahead, exact costs, a silent policy equals `never`, determinism."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from retrainer.simulate import Costs, History, SimulationSettings, simulate
from retrainer.simulate.history import StepGrid
from retrainer.simulate.models import ModelCache

from .conftest import at, make_cfg

CB = "cost_benefit:window=7d;min_samples=50;horizon=15d;metric=accuracy"
POLICIES = ["configured", "never", "periodic:20d", "always", CB, "oracle"]


def settings(**over):
    base = dict(start=at(50), end=at(230), every=timedelta(days=5), policies=POLICIES,
                costs=Costs(retrain_cost=40.0, error_cost=1.0), label_delay=timedelta(days=2))
    return SimulationSettings(**{**base, **over})


@pytest.fixture(scope="module")
def baseline():
    from .conftest import stream

    cfg = make_cfg()
    frame = stream()
    return cfg, frame, simulate(cfg, History.from_frame(frame, cfg.data, label_delay=timedelta(days=2)), settings())


def test_every_policy_did_something_distinct(baseline):
    _, _, result = baseline
    by = {s.policy: s for s in result.summaries}
    assert by["never"].retrains == 0 and by["always"].retrains == len(result.grid) - 1
    assert 0 < by["configured"].retrains < by["always"].retrains
    assert by[CB].retrains > 0  # the simulated retrain history feeds cost_benefit's fresh figure
    assert by["always"].errors < by["never"].errors  # the drift is real: retraining pays in errors
    configured = next(r for r in result.runs if r.name == "configured")
    fired = [s.at for s in configured.steps if s.retrained]
    assert all(b - a >= timedelta(days=7) for a, b in zip(fired, fired[1:]))  # the configured cooldown held


def test_poisoned_future_changes_nothing_before_it(baseline):
    cfg, frame, result = baseline
    cut = at(140)  # a step boundary (start 50 + 18 x 5d)
    delay = timedelta(days=2)
    poisoned = frame.copy()
    ts = poisoned["ts"]
    future = (ts >= cut).to_numpy()
    # Rows from the cut on: garbage features, flipped or missing labels. Rows just before the cut
    # whose label only arrives after it: flipped labels (they must not be seen either).
    rng = np.random.default_rng(9)
    poisoned.loc[future, "x1"] = rng.normal(50, 30, future.sum())
    poisoned.loc[future, "x2"] = -1e3
    poisoned.loc[future, "seg"] = "zzz"
    late = ((ts + delay > cut) & (ts < cut)).to_numpy()
    flip = future | late
    poisoned.loc[flip, "label"] = 1.0 - poisoned.loc[flip, "label"]
    poisoned.loc[future & (rng.random(len(poisoned)) < 0.3), "label"] = np.nan
    again = simulate(cfg, History.from_frame(poisoned, cfg.data, label_delay=delay), settings(policies=POLICIES[:-1]))
    k_cut = result.grid.instants.index(cut)
    changed = 0
    for run, other in zip(result.runs, again.runs):
        assert run.name == other.name
        for k, (a, b) in enumerate(zip(run.steps, other.steps)):
            if k <= k_cut:  # every decision taken at or before the cut, and the model it deployed
                assert (a.fired, a.retrained, a.accepted, a.version, a.reason) == \
                       (b.fired, b.retrained, b.accepted, b.version, b.reason), (run.name, k)
            if a.at + result.grid.every <= cut - delay:  # and how steps with untouched labels were served
                assert (a.errors, a.rows) == (b.errors, b.rows), (run.name, k)
            changed += (a.fired, a.version) != (b.fired, b.version)
    assert changed > 0  # the poison is strong enough to change what comes after the cut


def test_models_before_the_cut_are_identical_after_poisoning(frame, cfg):
    delay = timedelta(days=2)
    poisoned = frame.copy()
    cut = at(100)
    poisoned.loc[(poisoned["ts"] + delay > cut).to_numpy(), "label"] = 0.0
    caches = []
    for f in (frame, poisoned):
        h = History.from_frame(f, cfg.data, label_delay=delay)
        g = StepGrid.build(h, at(50), at(150), timedelta(days=10))
        caches.append(ModelCache(h, g, cfg, train_window=cfg.data.window))
    for k in range(6):  # steps at day 50 .. 100
        a, b = (c.at_step(k).estimator[-1] for c in caches)
        np.testing.assert_array_equal(a.coef_, b.coef_)
    assert not np.array_equal(caches[0].at_step(7).estimator[-1].coef_, caches[1].at_step(7).estimator[-1].coef_)


def test_costs_are_exact_and_errors_recount_independently(baseline):
    cfg, frame, result = baseline
    rc, ec = result.settings.costs.retrain_cost, result.settings.costs.error_cost
    history = History.from_frame(frame, cfg.data, label_delay=timedelta(days=2))
    for run, s in zip(result.runs, result.summaries):
        assert s.cost == rc * s.retrains + ec * s.errors
        assert s.retrains == sum(st.retrained for st in run.steps)
        if s.regret is not None:
            assert s.regret == s.cost - result.oracle.cost
    # Recount `never`'s errors from scratch: the initial model (trained on the 30 days before the
    # start, 2-day label delay, same estimator) predicts every replayed row.
    from retrainer.tasks.load import split_training_data
    from retrainer.tasks.train import train_model

    start = result.settings.start
    rows = history.frame[(history.ts < start.timestamp()) & (history.labelled_at <= start.timestamp())
                         & (history.ts > (start - cfg.data.window).timestamp())]
    model = train_model(cfg.estimator, cfg.data.features, split_training_data(rows, cfg.data, span="test"))
    replayed = history.frame[(history.ts >= start.timestamp()) & (history.ts < result.settings.end.timestamp())]
    wrong = int((model.predict(replayed[cfg.data.feature_names]) != replayed["label"].to_numpy()).sum())
    never = next(s for s in result.summaries if s.policy == "never")
    assert never.errors == wrong and never.rows == len(replayed)
    assert never.accuracy == pytest.approx(1 - wrong / len(replayed))


def test_a_policy_that_never_fires_costs_exactly_never(baseline):
    cfg, frame, result = baseline
    silent = "performance:window=7d;min_labels=50;thresholds={accuracy: 0.0}"
    other = simulate(cfg, History.from_frame(frame, cfg.data, label_delay=timedelta(days=2)),
                     settings(policies=["never", silent]))
    never, quiet = other.summaries
    assert quiet.retrains == 0
    assert (quiet.cost, quiet.errors, quiet.mean_metric) == (never.cost, never.errors, never.mean_metric)
    assert [s.errors for s in other.runs[0].steps] == [s.errors for s in other.runs[1].steps]
    assert never.cost == next(s for s in result.summaries if s.policy == "never").cost


@pytest.mark.slow
def test_two_runs_are_identical(baseline):
    cfg, frame, result = baseline
    again = simulate(cfg, History.from_frame(frame, cfg.data, label_delay=timedelta(days=2)), settings())
    assert again.to_dict() == result.to_dict()


@pytest.mark.slow
def test_gate_rejections_are_paid_and_keep_the_champion(frame):
    cfg = make_cfg(gate={"metric": "accuracy", "min_ratio": 1000})  # nothing passes 1000x the champion
    result = simulate(cfg, History.from_frame(frame, cfg.data), settings(policies=["always", "oracle"]))
    always, oracle = result.summaries
    assert always.retrains == len(result.grid) - 1 and always.deployments == 0
    assert {s.version for s in result.runs[0].steps} == {"s0"}
    assert always.cost == 40.0 * always.retrains + always.errors
    assert always.regret >= 0 and oracle.deployments == oracle.retrains  # the oracle is gate-free


def test_metrics_are_nan_free_where_defined(baseline):
    _, _, result = baseline
    for s in result.summaries:
        assert 0.0 <= s.mean_metric <= 1.0 and not math.isnan(s.worst_metric)


def test_each_simulated_retrain_records_its_paired_delta_and_the_champions_start(monkeypatch):
    """What cost_benefit's decay prior reads: Δ_off = candidate − champion on the candidate's holdout
    (the gate's own comparison) and when the replaced champion started serving."""
    from retrainer.simulate import replay

    from .conftest import stream

    records, gates = [], {}
    record = replay.ReplaySource.record_retrain
    gate = ModelCache.gate
    monkeypatch.setattr(replay.ReplaySource, "record_retrain", lambda self, r: (records.append(r), record(self, r))[1])

    def spy(self, candidate, champion):
        verdict = gate(self, candidate, champion)
        gates[candidate.version] = (verdict, champion.trained_at)
        return verdict

    monkeypatch.setattr(ModelCache, "gate", spy)
    cfg = make_cfg()
    history = History.from_frame(stream(), cfg.data, label_delay=timedelta(days=2))
    simulate(cfg, history, settings(policies=["always"], end=at(100)))
    first, *later = records
    assert first.offline_delta is None and first.champion_since is None  # the initial model replaced nothing
    assert len(later) == len(gates) > 0
    champion_since = first.at
    for r in later:
        verdict, since = gates[r.version]
        assert r.champion_since == since == champion_since
        assert r.offline_delta[verdict.metric] == pytest.approx(verdict.candidate_value - verdict.champion_value)
        assert set(r.offline_delta) <= set(r.metrics)
        if r.status == "success":
            champion_since = r.at
