"""Histograms kept at ingest: the same counts as a recount of the raw chunks, re-binned once for
a new champion, read by the drift trigger with the raw path's PSI."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from retrainer.config import FeatureSpec, parse_config
from retrainer.profiles import build_reference_profile
from retrainer.stats.histogram import frozen_bins
from retrainer.profiles import load_reference_profile
from retrainer.store import Store
from retrainer.triggers.check import run_check

from .conftest import T0

SPECS = [FeatureSpec(name="x"), FeatureSpec(name="y", nullable=True), FeatureSpec(name="c", type="categorical")]
H = timedelta(hours=1)


def profile(seed: int, shift: float = 0.0) -> dict:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(shift, 1, 5_000), "y": rng.lognormal(size=5_000),
                          "c": rng.choice(list("abcde"), 5_000, p=[0.4, 0.3, 0.15, 0.1, 0.05])})
    return build_reference_profile(frame, SPECS, model_version=str(seed), registered_at=T0 - timedelta(days=1))


def log(store: Store, start: int, n: int, *, hours: float = 6.0, seed: int = 0, shift: float = 0.0) -> None:
    for at in range(start, start + n, 1000):  # the fixture's store takes batches of 1,000
        _log(store, at, min(1000, start + n - at), hours=hours, seed=seed * 1000 + at, shift=shift)


def _log(store: Store, start: int, n: int, *, hours: float, seed: int, shift: float) -> None:
    rng = np.random.default_rng(seed)
    y = rng.lognormal(size=n)
    y[::17] = np.nan
    store.log_prediction_frame("m", pd.DataFrame({
        "request_id": [f"r{i}" for i in range(start, start + n)],
        "ts": pd.Timestamp(T0) + pd.to_timedelta(np.sort(rng.uniform(0, hours * 3600, n)), unit="s"),
        "prediction": 0.0, "x": rng.normal(shift, 1, n), "y": y,
        "c": rng.choice(list("abcdez"), n),  # "z": a category the reference never had
    }), SPECS)


def recount(store: Store, version: str, start, end) -> dict:
    """What the histograms must hold: the raw chunks of the window counted on the version's bins."""
    refs = load_reference_profile(store.reference_profile("m", version)).features
    raw = store.features_window("m", start, end, list(refs))
    return {name: frozen_bins(ref).count(raw.columns[name]) for name, ref in refs.items()}


def assert_same(window, expected) -> None:
    for name, want in expected.items():
        got = window.histograms[name]
        np.testing.assert_array_equal(got.counts, want.counts)
        assert (got.n, got.nulls) == (want.n, want.nulls)
        if name != "c":
            assert got.sum == pytest.approx(want.sum, rel=1e-12) and got.sum_sq == pytest.approx(want.sum_sq, rel=1e-12)
            assert (got.min, got.max) == (want.min, want.max)


def test_ingest_counts_equal_a_recount_of_the_raw_chunks(store: Store) -> None:
    store.save_reference_profile("m", "1", profile(1))
    store.champion_cas("m", None, "1")
    assert store.ensure_histograms("m", "1") is not None  # nothing logged yet: bins frozen, nothing counted
    for k in range(5):  # batches straddle hour boundaries
        log(store, k * 700, 700, seed=k)
    window = store.feature_histograms("m", "1", T0 - H / 2, T0 + 5.5 * H)
    assert (window.start, window.end) == ((T0).timestamp(), (T0 + 5 * H).timestamp())  # whole hours only
    assert_same(window, recount(store, "1", T0, T0 + 5 * H))
    assert window.histograms["c"].counts[-1] > 0  # "z" counted as new
    assert store.feature_histograms("m", "1", T0 + 10 * 60 * timedelta(seconds=1), T0 + 50 * timedelta(minutes=1)) is None
    assert store.feature_histograms("m", "2", T0, T0 + 5 * H) is None  # no bins for a version never binned


def test_a_new_champion_is_rebinned_once_from_the_raw_chunks(store: Store) -> None:
    store.save_reference_profile("m", "1", profile(1))
    store.champion_cas("m", None, "1")
    store.ensure_histograms("m", "1")
    log(store, 0, 2_000, seed=1)
    store.save_reference_profile("m", "2", profile(2, shift=1.0))  # other data: other bins
    store.champion_cas("m", "1", "2")
    log(store, 2_000, 1_000, seed=2)  # logged before anyone re-binned: not counted on 2's bins yet
    assert store.feature_histograms("m", "2", T0, T0 + 6 * H) is None
    assert store.ensure_histograms("m", "2") is not None
    assert_same(store.feature_histograms("m", "2", T0, T0 + 6 * H), recount(store, "2", T0, T0 + 6 * H))
    log(store, 3_000, 1_000, seed=3)  # counted on 2's bins from now on, and not on 1's
    assert_same(store.feature_histograms("m", "2", T0, T0 + 6 * H), recount(store, "2", T0, T0 + 6 * H))
    old = store.feature_histograms("m", "1", T0, T0 + 6 * H)
    assert old.histograms["x"].n == 2_000
    first = store.feature_histograms("m", "2", T0, T0 + 6 * H)
    store.ensure_histograms("m", "2")  # once: a second call changes nothing
    np.testing.assert_array_equal(store.feature_histograms("m", "2", T0, T0 + 6 * H).histograms["x"].counts,
                                  first.histograms["x"].counts)


def _cfg(url: str, read: str) -> object:
    return parse_config({"model": {"name": "m"}, "store": {"url": url}, "data": {"features": [s.model_dump() for s in SPECS]},
                         "triggers": [{"type": "drift", "window": "6h", "min_samples": 100, "read": read, "top": 3}]})


def test_the_drift_check_reads_counts_with_the_raw_paths_psi(store: Store, store_url: str) -> None:
    store.save_reference_profile("m", "1", profile(1))
    store.champion_cas("m", None, "1")
    log(store, 0, 3_000, seed=4, shift=0.5)
    now = T0 + 6 * H
    counted = run_check(_cfg(store_url, "auto"), store=store, now=now, write_audit=False)  # re-bins once, then reads
    raw = run_check(_cfg(store_url, "raw"), store=store, now=now, write_audit=False)
    (d_hist,), (d_raw,) = counted.children, raw.children
    assert d_hist.evidence["read"] == "histograms" and d_raw.evidence["read"] == "raw"
    assert list(d_hist.evidence["window_used"]) == [T0.isoformat(), now.isoformat()]
    assert (d_hist.fired, d_hist.value) == (d_raw.fired, d_raw.value)  # the same PSI verdict, to the float
    top = {row["feature"]: row for row in d_hist.evidence["top"]}
    assert top["x"]["ks_bound"] < 0.05 and "wasserstein_bound" in top["x"]
    # A window shorter than a bucket has no whole hour: the check reads raw values instead.
    short = parse_config({**_cfg(store_url, "auto").model_dump(exclude={"base_dir"}),
                          "triggers": [{"type": "drift", "window": "30m", "min_samples": 10}]})
    (d_short,) = run_check(short, store=store, now=now - timedelta(minutes=10), write_audit=False).children
    assert d_short.evidence["read"] == "raw"
    insisting = parse_config({**_cfg(store_url, "auto").model_dump(exclude={"base_dir"}),
                              "triggers": [{"type": "drift", "window": "30m", "read": "histograms"}]})
    (d_none,) = run_check(insisting, store=store, now=now - timedelta(minutes=10), write_audit=False).children
    assert d_none.status == "insufficient_data" and "histograms" in d_none.reason


def test_window_auto_on_counts_reads_the_shortest_run_of_whole_hours_holding_min_samples(store: Store, store_url: str) -> None:
    """3,000 predictions over 6 hours, ~500 an hour. min_samples 800: the auto window doubles from an
    hour to 2 h (~1,000 counted, enough) and ends at now. min_samples 5,000: it stops at max_window
    (6 h) with every prediction counted and says it could not decide."""
    store.save_reference_profile("m", "1", profile(1))
    store.champion_cas("m", None, "1")
    log(store, 0, 3_000, seed=4)
    now = T0 + 6 * H

    def check(min_samples: int, max_window: str = "6h"):
        cfg = parse_config({"model": {"name": "m"}, "store": {"url": store_url},
                            "data": {"features": [s.model_dump() for s in SPECS]},
                            "triggers": [{"type": "drift", "min_samples": min_samples, "max_window": max_window,
                                          "read": "histograms"}]})
        (d,) = run_check(cfg, store=store, now=now, write_audit=False).children
        return d

    two_hours = check(800)
    assert two_hours.evidence["read"] == "histograms"
    span = two_hours.evidence["evidence_window"]
    assert (span["span_s"], span["limit"], span["end"]) == (7200.0, "count", now.isoformat())
    assert 800 <= span["n"] == two_hours.evidence["n_current"] < 1_300  # ~1,000: two hours' counts
    capped = check(5_000)
    assert capped.status == "insufficient_data" and capped.evidence["evidence_window"]["limit"] == "max_window"
    assert capped.evidence["n_current"] == 3_000 and "capped at max_window" in capped.reason
