"""The shadow's evidence on stored comparisons: paired differences (labelled and label-free) checked
by hand, PPI++ on them equal to the estimator called directly, and the guardrails (serving errors
by a one-sided two-proportion test checked against statsmodels, p99 latency as a ratio, the
agreement floor as a sanity floor), judged only once enough requests were compared."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from statsmodels.stats.proportion import proportions_ztest

from retrainer.config import parse_config
from retrainer.deployments.rollout.evidence import MIN_LABELLED_PAIRS, p_right, shadow_evidence, shadow_pairs
from retrainer.stats.calibration import CalibrationMap
from retrainer.stats.paired import paired_difference, ppi_paired_difference
from retrainer.store import ShadowRecord, ShadowWindow

T0 = datetime(2026, 3, 2, tzinfo=UTC)
IDENTITY = CalibrationMap("platt", a=1.0, b=0.0, logit_input=True)
SHARPER = CalibrationMap("platt", a=2.0, b=0.0, logit_input=True)


def cfg(**shadow):
    return parse_config({"model": {"name": "m"}, "data": {"source": {"url": "sqlite:///x.db", "table": "t"},
                                                          "features": [{"name": "x"}]},
                         "rollout": {"mode": "shadow", "latency_slack_ms": 0.0,
                                     "shadow": {"min_comparisons": 200, "duration": "1d", **shadow}}},
                        environ={})


def rows(n: int, *, disagree_every: int = 0, fail_every: int = 0, seed: int = 0) -> list[ShadowRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        fail = bool(fail_every) and i % fail_every == 0
        flip = bool(disagree_every) and i % disagree_every == 0
        champ = float(i % 2)
        chal = float((i + flip) % 2)
        out.append(ShadowRecord("m", f"r{i}", "1", "2", champ, None if fail else chal, T0,
                                champion_score=float(rng.uniform(0.5, 1) if champ else rng.uniform(0, 0.5)),
                                shadow_score=None if fail else float(rng.uniform(0.5, 1) if chal else rng.uniform(0, 0.5)),
                                latency_ms=2.0, champion_latency_ms=1.0, error="boom" if fail else None))
    return out


def test_labelled_pairs_are_correctness_differences_on_matured_labels_only() -> None:
    rs = rows(400, disagree_every=4)
    labels = {f"r{i}": float(i % 2) for i in range(0, 400, 2)}  # half the labels have matured: the champion's answers
    pairs = shadow_pairs(ShadowWindow.from_records(rs, labels), champion_cal=IDENTITY, challenger_cal=IDENTITY)
    # By hand: on labelled rows the champion is right; the challenger wrong where it flipped (i % 4 == 0).
    want = np.array([-1.0 if i % 4 == 0 else 0.0 for i in range(0, 400, 2)])
    assert pairs.n_labelled == 200 and pairs.n_unlabelled == 200
    assert np.array_equal(pairs.labelled_diff, want)
    assert pairs.agreement == pytest.approx(0.75)


def test_label_free_pairs_use_each_versions_own_calibration_map() -> None:
    rs = rows(50)
    pairs = shadow_pairs(ShadowWindow.from_records(rs, {}), champion_cal=IDENTITY, challenger_cal=SHARPER)
    for r, proxy in zip(rs, pairs.unlabelled_proxy_diff):
        def right(cal, score, pred):
            p = 1 / (1 + np.exp(-cal.a * np.log(score / (1 - score))))  # Platt on the logit, by hand
            return p if pred == 1 else 1 - p
        want = right(SHARPER, r.shadow_score, r.shadow_prediction) - right(IDENTITY, r.champion_score, r.champion_prediction)
        assert proxy == pytest.approx(want, abs=1e-9)
    assert p_right(IDENTITY, np.array([0.8, 0.8]), np.array([1.0, 0.0])) == pytest.approx([0.8, 0.2])


def test_the_estimate_is_ppi_on_the_pairs_and_none_before_labels_mature() -> None:
    rs = rows(600, disagree_every=3)
    c = cfg()
    nothing = shadow_evidence(c, ShadowWindow.from_records(rs, {}), champion_cal=IDENTITY, challenger_cal=IDENTITY)
    assert nothing.estimate is None and nothing.n_labelled == 0 and nothing.n_unlabelled == 600
    labels = {f"r{i}": float((i // 3) % 2) for i in range(0, 600, 3)}
    ev = shadow_evidence(c, ShadowWindow.from_records(rs, labels), champion_cal=IDENTITY, challenger_cal=IDENTITY)
    pairs = shadow_pairs(ShadowWindow.from_records(rs, labels), champion_cal=IDENTITY, challenger_cal=IDENTITY)
    ref = ppi_paired_difference(pairs.labelled_diff, pairs.labelled_proxy_diff, pairs.unlabelled_proxy_diff)
    assert ev.estimate == ref and ev.n_labelled == 200 >= MIN_LABELLED_PAIRS
    # Without a map for either version: the labelled pairs alone.
    alone = shadow_evidence(c, ShadowWindow.from_records(rs, labels), champion_cal=IDENTITY, challenger_cal=None)
    assert alone.n_unlabelled == 0 and "challenger" in alone.facts["label_free"]
    assert alone.estimate.mean == pytest.approx(paired_difference(pairs.labelled_diff, 0 * pairs.labelled_diff).mean)


def test_guardrails_wait_for_min_comparisons() -> None:
    few = shadow_evidence(cfg(), ShadowWindow.from_records(rows(50, disagree_every=1), {}), champion_cal=None, challenger_cal=None)
    assert not few.guardrails_judged and few.checks == [] and few.guardrail_failure is None
    assert few.not_ready == ["shadow.min_comparisons: 50 of 200 requests compared (guardrails not judged yet)"]


def test_agreement_is_a_floor_for_broken_models_not_a_pass_line() -> None:
    ok = shadow_evidence(cfg(), ShadowWindow.from_records(rows(400, disagree_every=3), {}), champion_cal=None, challenger_cal=None)
    assert ok.guardrail_failure is None  # 67% agreement: no verdict either way from agreement
    broken = shadow_evidence(cfg(), ShadowWindow.from_records(rows(400, disagree_every=1), {}), champion_cal=None, challenger_cal=None)
    assert broken.guardrail_failure and "agreement_floor" in broken.guardrail_failure
    floor = next(c for c in broken.checks if c.name == "agreement_floor")
    assert floor.value == 0.0 and floor.threshold == 0.5 and "broken model" in floor.reason


def test_serving_errors_are_a_one_sided_test_against_statsmodels() -> None:
    one = shadow_evidence(cfg(), ShadowWindow.from_records(rows(400, fail_every=400), {}), champion_cal=None, challenger_cal=None)
    assert one.guardrail_failure is None  # one failure in 400: above the champion's 0, not significantly
    many = shadow_evidence(cfg(), ShadowWindow.from_records(rows(400, fail_every=20), {}), champion_cal=None, challenger_cal=None)
    check = next(c for c in many.checks if c.name == "serving_errors")
    expected = proportions_ztest([20, 0], [400, 400], alternative="larger")[1]
    assert check.value == pytest.approx(expected, rel=1e-9) and not check.passed
    assert many.facts["failures"] == 20


def test_a_few_slow_calls_do_not_reject_before_a_p99_means_anything() -> None:
    """300 calls as fast as the champion's but one in fifty 50x slower (a busy host's hiccups): the median
    is judged (p99 would be the slow calls); from 1,000 calls on, the same share of slow calls is a
    p99 and rejects."""
    def hiccups(n: int) -> list:
        return [replace(r, latency_ms=50.0 if i % 50 == 0 else 1.0) for i, r in enumerate(rows(n))]

    few = shadow_evidence(cfg(max_latency_ratio=2.0), ShadowWindow.from_records(hiccups(300), {}), champion_cal=None, challenger_cal=None)
    check = next(c for c in few.checks if c.name == "latency")
    assert few.guardrail_failure is None and check.value == 1.0 and "median latency" in check.reason
    many = shadow_evidence(cfg(max_latency_ratio=2.0), ShadowWindow.from_records(hiccups(1_000), {}), champion_cal=None, challenger_cal=None)
    assert "p99 latency" in many.guardrail_failure


def test_latency_is_judged_as_a_ratio_of_the_champions() -> None:
    slow = [replace(r, latency_ms=2.5) for r in rows(300)]  # champion 1 ms: 2.5x
    v = shadow_evidence(cfg(max_latency_ratio=2.0), ShadowWindow.from_records(slow, {}), champion_cal=None, challenger_cal=None)
    assert "latency" in v.guardrail_failure and "2.50 ms > 2 x champion's 1.00 ms" in v.guardrail_failure
    ok = shadow_evidence(cfg(max_latency_ratio=3.0), ShadowWindow.from_records(slow, {}), champion_cal=None, challenger_cal=None)
    assert ok.guardrail_failure is None


def test_the_stores_shadow_window_equals_the_records_and_labels_it_holds(tmp_path) -> None:
    """One joined query (Store.shadow_window) gives the columns the records and known labels give."""
    from datetime import timedelta

    from retrainer.store import LabelRecord, Store

    rs = [replace(r, ts=T0 + timedelta(seconds=i)) for i, r in enumerate(rows(300, disagree_every=3, fail_every=50))]
    with Store.open(f"sqlite:///{tmp_path / 's.db'}") as store:
        store.init()
        store.record_shadow(rs)
        store.log_labels([LabelRecord(f"r{i}", float(i % 2), T0 + timedelta(hours=i % 5)) for i in range(0, 300, 2)],
                         received_at=T0 + timedelta(days=1))
        as_of = T0 + timedelta(hours=2, minutes=30)  # labels of hours 0-2 known, 3-4 not yet
        got = store.shadow_window("m", shadow_version="2", since=T0, until=T0 + timedelta(days=1), as_of=as_of)
        labels = store.known_labels([r.request_id for r in rs], as_of=as_of)
    want = ShadowWindow.from_records(rs, labels)
    for name in ("ts", "champion_prediction", "shadow_prediction", "champion_score", "shadow_score", "latency_ms",
                 "champion_latency_ms", "failed", "label"):
        assert np.array_equal(getattr(got, name), getattr(want, name), equal_nan=name != "failed"), name
    assert np.isfinite(got.label).sum() == len(labels) == 90 and np.all(got.label_ts[np.isfinite(got.label)] <= as_of.timestamp())
