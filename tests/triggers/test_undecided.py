"""A policy that could not decide says so: backtest and check report it, with why."""

from __future__ import annotations

from datetime import timedelta

from retrainer.config import parse_config
from retrainer.triggers.backtest import backtest
from retrainer.triggers.decision import Decision
from retrainer.triggers.policy import build_policy
from retrainer.triggers.undecided import Undecided

from test_evidence_window import NOW, ctx, daily_log  # same directory (rootdir-relative imports)


def cfg(triggers):
    return parse_config({"model": {"name": "m"}, "data": {"source": {"table": "t"}, "timestamp_column": "ts",
                         "label_column": "y", "features": [{"name": "x"}]}, "triggers": triggers,
                         "policy": {"cooldown": "0s"}})


def test_share_and_flag_count_only_insufficient_checks():
    lacking = Decision.insufficient("performance", reason="too few")
    fine, fired = Decision.ok("p", reason="fine"), Decision.fire("p", reason="bad")
    u = Undecided.of([(lacking, (lacking,))] * 3 + [(fine, ()), (fired, ())])
    assert (u.checks, u.undecided, u.share, u.flagged) == (5, 3, 0.6, True)
    assert u.flag("p") == "p could not decide at 3 of 5 checks (60%): performance: too few"
    assert not Undecided.of([(lacking, (lacking,)), (fine, ())]).flagged  # half is not above half


def test_backtest_reports_the_share_and_flags_a_blind_policy():
    frame = daily_log(1, 200)  # one labelled prediction a day
    source = ctx(frame).source
    result = backtest(cfg([{"type": "performance"}]), store=source, start=NOW - timedelta(days=60), end=NOW,
                      every=timedelta(days=10))
    u = result.undecided()
    assert u.share == 1.0 and u.flagged
    assert "(90 labelled predictions; min_samples 262; capped at max_window 90d)" in u.why
    assert result.to_dict()["undecided"]["flagged"] is True
    # The same stream, a rule sized for it: it decides at every step.
    sized = backtest(cfg([{"type": "performance", "min_labels": 30, "thresholds": {"accuracy": 0.5}}]), store=source,
                     start=NOW - timedelta(days=60), end=NOW, every=timedelta(days=10))
    assert sized.undecided().share == 0.0 and not sized.undecided().flagged


def test_a_single_check_says_it_could_not_decide():
    policy = build_policy(cfg([{"type": "performance"}, {"type": "drift"}]))
    result = policy.check(ctx(daily_log(1, 200)))
    # drift has no reference profile, performance too few labels: nothing decided, and the check says why.
    assert result.raw.status == "insufficient_data"
    assert result.undecided.startswith("performance: Not enough labels to judge performance")
    assert result.to_dict()["undecided"] == result.undecided
    decided = build_policy(cfg([{"type": "performance", "min_labels": 30}])).check(ctx(daily_log(1, 200)))
    assert decided.undecided == "" and "undecided" not in decided.to_dict()
