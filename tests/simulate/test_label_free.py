"""Label-free triggers in a replay: each simulated model carries its calibration map (as
registration fits it), so estimated_performance can fire before any label of the drift arrives."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from retrainer.simulate import Costs, History, SimulationSettings, simulate

from .conftest import T0, at, make_cfg

DELAY = timedelta(days=40)  # labels come back long after the 7-day steps
EST = "estimated_performance:drop={accuracy: 0.05}"


def covariate_shift(days: int = 120, per_day: int = 24, seed: int = 5) -> pd.DataFrame:
    """x1 is far from the boundary for 60 days, then crowds it: P(y | x) never changes, but the
    model's own scores show it is now guessing (what CBPE can see)."""
    rng = np.random.default_rng(seed)
    n = days * per_day
    day = np.arange(n) / per_day
    ts = pd.Timestamp(T0) + pd.to_timedelta(day, unit="D")
    x1 = rng.normal(0, np.where(day < 60, 2.0, 0.25))
    y = (x1 + rng.normal(0, 0.5, n) > 0).astype(float)
    return pd.DataFrame({"ts": ts, "x1": x1, "x2": rng.normal(size=n), "seg": np.where(rng.random(n) < 0.5, "a", "b"),
                         "label": y})


@pytest.fixture(scope="module")
def replay():
    cfg = make_cfg(data={**make_cfg().data.model_dump(mode="json"), "window": "60d"})
    history = History.from_frame(covariate_shift(), cfg.data, label_delay=DELAY)
    settings = SimulationSettings(start=at(45), end=at(120), every=timedelta(days=7),
                                  policies=[EST, "cost_benefit", "performance", "never"], costs=Costs(10, 1), label_delay=DELAY)
    return simulate(cfg, history, settings)


def test_simulated_models_carry_a_calibration_map(replay):
    run = next(r for r in replay.runs if r.name == EST)
    # The estimate ran (ok or fired), where without a calibration map every check was insufficient_data.
    assert {s.status for s in run.steps} >= {"ok", "fired"}
    assert run.undecided().share < 0.5


def test_estimated_performance_fires_after_the_shift_before_its_labels_arrive(replay):
    run = next(r for r in replay.runs if r.name == EST)
    fired = [s.at for s in run.steps if s.fired]
    assert fired, [s.reason for s in run.steps]
    first = fired[0]
    assert at(60) < first < at(60) + DELAY  # after the shift, before any of its labels came back
    assert all(not s.fired for s in run.steps if s.at <= at(60))
    # performance on matured labels cannot see it yet: its labels are 40 days late.
    perf = next(r for r in replay.runs if r.name == "performance")
    assert not any(s.fired for s in perf.steps if s.at <= first)


def test_a_policy_that_could_not_decide_is_flagged_with_why(replay):
    from retrainer.simulate.report import markdown_table

    by = {s.policy: s for s in replay.summaries}
    perf = by["performance"]
    # Labels 40 days late and a new champion every few steps: most checks had no matured label.
    assert perf.undecided_share > 0.5 and perf.undecided_flag is not None
    assert perf.undecided_flag.startswith("performance could not decide at ")
    assert "labelled predictions; min_samples 262" in perf.undecided_flag
    assert by["never"].undecided_share == 0 and by["never"].undecided_flag is None
    table = markdown_table(replay)
    assert f"! {perf.undecided_flag}" in table and table.count("\n! ") == 1


def test_cost_benefit_prices_the_shift_from_the_estimate_before_any_label(replay):
    # The champion's own labels only start arriving 40 days after it started serving: until then the
    # only figure cost_benefit can have of it is the label-free estimate (else: insufficient_data).
    run = next(r for r in replay.runs if r.name == "cost_benefit")
    fired = [s.at for s in run.steps if s.fired]
    assert fired and at(60) < fired[0] < at(60) + DELAY
    assert all(not s.fired for s in run.steps if s.at <= at(60))
    assert all(s.status in ("ok", "fired") for s in run.steps[1:])
