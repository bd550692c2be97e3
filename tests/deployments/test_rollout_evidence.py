"""The shadow stage's checks on stored comparisons: waits, agreement, error rate by a one-sided
two-proportion test (statsmodels on the same counts), p99 latency as a ratio of the champion's."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from statsmodels.stats.proportion import proportions_ztest

from retrainer.config import parse_config
from retrainer.deployments.rollout.evidence import error_counts, judge_shadow
from retrainer.store import ShadowRecord

T0 = datetime(2026, 3, 2, tzinfo=UTC)
LATER = T0 + timedelta(days=2)


def cfg(**shadow):
    return parse_config({"model": {"name": "m"}, "data": {"source": {"url": "sqlite:///x.db", "table": "t"},
                                                          "features": [{"name": "x"}]},
                         "rollout": {"mode": "shadow", "latency_slack_ms": 0.0,
                                     "shadow": {"min_comparisons": 200, "duration": "1d", **shadow}}},
                        environ={})


def rows(n: int, *, disagree_every: int = 0, fail_every: int = 0) -> list[ShadowRecord]:
    out = []
    for i in range(n):
        fail = bool(fail_every) and i % fail_every == 0
        flip = bool(disagree_every) and i % disagree_every == 0
        out.append(ShadowRecord("m", f"r{i}", "1", "2", float(i % 2), None if fail else float((i + flip) % 2),
                                T0, latency_ms=2.0, champion_latency_ms=1.0, error="boom" if fail else None))
    return out


def test_waits_for_duration_and_comparisons_saying_for_what() -> None:
    early = judge_shadow(cfg(), rows(300), {}, version="2", started_at=T0, now=T0 + timedelta(hours=3))
    assert early.outcome == "wait" and early.waiting_for == ["shadow.duration: 21h0m more (of 1d0h)"]
    few = judge_shadow(cfg(), rows(50), {}, version="2", started_at=T0, now=LATER)
    assert few.outcome == "wait" and few.waiting_for == ["shadow.min_comparisons: 50 of 200 requests compared"]
    assert judge_shadow(cfg(), rows(300), {}, version="2", started_at=T0, now=LATER).outcome == "pass"


def test_agreement_below_the_minimum_fails_naming_the_check() -> None:
    v = judge_shadow(cfg(min_agreement=0.9), rows(400, disagree_every=5), {}, version="2", started_at=T0, now=LATER)
    assert v.outcome == "fail" and v.failed == ["agreement"] and "agreement 80.0% < 90.0%" in v.reason


def test_error_rate_is_a_one_sided_test_not_a_raw_comparison() -> None:
    # One failure in 400 where the champion failed none: above it, but not significantly.
    one = judge_shadow(cfg(), rows(400, fail_every=400), {}, version="2", started_at=T0, now=LATER)
    assert one.outcome == "pass", one.reason
    # One in 20: significantly above; the p-value is statsmodels' on the same counts.
    many_rows = rows(400, fail_every=20)
    n, champion, challenger = error_counts(many_rows, {})
    assert (n, champion, challenger) == (400, 0, 20)
    many = judge_shadow(cfg(min_agreement=0.0), many_rows, {}, version="2", started_at=T0, now=LATER)
    [check] = [c for c in many.checks if c.name == "error_rate"]
    expected = proportions_ztest([challenger, champion], [n, n], alternative="larger")[1]
    assert check.value == pytest.approx(expected, rel=1e-9) and not check.passed
    assert many.outcome == "fail" and many.failed == ["error_rate"]
    # Known labels count wrong answers of both models on the same requests.
    labels = {f"r{i}": float(i % 2) for i in range(400)}
    assert error_counts(rows(400, disagree_every=4), labels) == (400, 0, 100)
    flipped = {k: 1.0 - v for k, v in labels.items()}
    assert error_counts(rows(400, disagree_every=4), flipped) == (400, 400, 300)


def test_p99_latency_is_judged_as_a_ratio_of_the_champions() -> None:
    slow = [replace(r, latency_ms=2.5) for r in rows(300)]  # champion 1 ms: 2.5x
    v = judge_shadow(cfg(max_latency_ratio=2.0), slow, {}, version="2", started_at=T0, now=LATER)
    assert v.outcome == "fail" and v.failed == ["latency"] and "2.50 ms > 2 x champion's 1.00 ms" in v.reason
    ok = judge_shadow(cfg(max_latency_ratio=3.0), slow, {}, version="2", started_at=T0, now=LATER)
    assert ok.outcome == "pass"
