"""Reference profiles and the drift entry point: same numbers as the low-level functions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from retrainer.errors import StatisticsError
from retrainer.stats import (
    CategoricalReference,
    NumericReference,
    chi_square,
    dataset_drift,
    feature_drift,
    jensen_shannon,
    ks_2samp_stat,
    psi,
    wasserstein,
)

pytestmark = pytest.mark.filterwarnings("error")


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(42)
    n = 20_000
    ref = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.exponential(size=n),
            "z": np.round(rng.normal(size=n), 1),
            "c": rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]),
        }
    )
    cur = pd.DataFrame(
        {
            "x": rng.normal(0.2, 1.0, size=15_000),
            "y": rng.exponential(size=15_000),
            "z": np.round(rng.normal(size=15_000), 1),
            "c": rng.choice(["a", "b", "c", "new"], size=15_000, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
    return ref, cur


def test_numeric_result_equals_low_level_functions(frames):
    ref, cur = frames
    for col in ["x", "y", "z"]:
        res = feature_drift(NumericReference.from_values(ref[col]), cur[col].to_numpy(), feature=col)
        assert res.status == "ok" and res.n_ref == 20_000 and res.n_cur == 15_000 and res.n_nan == 0
        assert res.psi == pytest.approx(psi(ref[col], cur[col]), rel=1e-12)
        expected = stats.ks_2samp(ref[col], cur[col])
        assert res.ks == float(expected.statistic)
        assert res.ks_pvalue == pytest.approx(float(expected.pvalue), rel=1e-9)
        assert res.wasserstein == pytest.approx(stats.wasserstein_distance(ref[col], cur[col]), rel=1e-12)


def test_categorical_result_equals_low_level_functions(frames):
    ref, cur = frames
    reference = CategoricalReference.from_values(ref["c"])
    res = feature_drift(reference, cur["c"], feature="c")
    cur_counts = cur["c"].value_counts().to_dict()
    assert res.status == "ok"
    assert (res.chi2, res.chi2_pvalue) == chi_square(reference.counts, cur_counts)
    assert res.jensen_shannon == jensen_shannon(reference.counts, cur_counts)
    assert res.psi > 0.1  # a 10% new category


def test_dataset_drift_flags_the_shifted_features(frames):
    ref, cur = frames
    refs = {"x": NumericReference.from_values(ref["x"]), "y": NumericReference.from_values(ref["y"]),
            "c": CategoricalReference.from_values(ref["c"]), "gone": NumericReference.from_values(ref["z"])}
    result = dataset_drift(refs, cur.drop(columns=["z"]).rename(columns={}), max_workers=2)
    assert list(result.features) == ["x", "y", "c", "gone"]
    assert result.features["x"].pvalue_adjusted < 1e-6
    assert result.features["y"].pvalue_adjusted > 0.01
    assert result.features["c"].pvalue_adjusted < 1e-6
    gone = result.features["gone"]
    assert gone.status == "insufficient_data" and "missing" in gone.reason and gone.psi is None
    assert result.insufficient == ["gone"]
    json.dumps(result.to_dict())  # evidence must be JSON-able
    # same numbers with or without the thread pool, from a mapping of arrays too
    serial = dataset_drift(refs, {k: cur[k].to_numpy() for k in ["x", "y", "c"]}, max_workers=1)
    for name in ["x", "y", "c"]:
        assert serial.features[name] == result.features[name]


def test_references_round_trip_through_json(frames):
    ref, cur = frames
    num = NumericReference.from_values(np.concatenate([ref["x"], [np.nan]]), bins=8, sample_size=5000)
    back = NumericReference.from_dict(json.loads(json.dumps(num.to_dict(), allow_nan=False)))
    np.testing.assert_array_equal(back.edges, num.edges)
    np.testing.assert_array_equal(back.counts, num.counts)
    np.testing.assert_array_equal(back.sorted_sample, num.sorted_sample)
    assert (back.n, back.n_nan, back.sorted_sample.size) == (20_000, 1, 5000)
    assert feature_drift(back, cur["x"]) == feature_drift(num, cur["x"])
    cat = CategoricalReference.from_values(ref["c"])
    assert CategoricalReference.from_dict(json.loads(json.dumps(cat.to_dict()))) == cat


def test_reference_profiles_are_immutable(frames):
    ref, _ = frames
    num = NumericReference.from_values(ref["x"])
    with pytest.raises(ValueError):
        num.sorted_sample[0] = 1.0
    with pytest.raises(AttributeError):
        num.n = 3  # type: ignore[misc]


def test_bad_profiles_are_rejected_clearly():
    with pytest.raises(StatisticsError, match="rebuild"):
        NumericReference.from_dict({"kind": "numeric", "version": 1, "inner_edges": [1.0], "counts": [1]})
    with pytest.raises(StatisticsError, match="version-1 numeric"):
        NumericReference.from_dict({"kind": "categorical", "version": 1})
    with pytest.raises(StatisticsError, match="no finite values"):
        NumericReference.from_values([np.nan, np.nan])
    with pytest.raises(StatisticsError, match="NumericReference"):
        feature_drift({"a": 1}, [1.0])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("current", "reason"),
    [([], "0 finite values"), ([np.nan] * 100, "100 NaN/inf dropped"), ([1.0] * 5, "fewer than min_count"),
     (["a", "b"], "numeric")],
)
def test_unusable_current_is_insufficient_not_drift(current, reason):
    ref = NumericReference.from_values(np.random.default_rng(0).normal(size=1000))
    res = feature_drift(ref, np.asarray(current, dtype=object) if current and isinstance(current[0], str) else current)
    assert res.status == "insufficient_data"
    assert reason in res.reason
    assert (res.psi, res.ks, res.wasserstein, res.pvalue) == (None, None, None, None)


def test_constant_identical_is_zero_and_constant_shift_is_drift():
    ref = NumericReference.from_values(np.full(1000, 3.0))
    same = feature_drift(ref, np.full(500, 3.0))
    assert (same.status, same.psi, same.ks, same.ks_pvalue, same.wasserstein) == ("ok", 0.0, 0.0, 1.0, 0.0)
    moved = feature_drift(ref, np.full(500, 2.0))
    assert moved.ks == 1.0 and moved.wasserstein == 1.0 and moved.psi > 1.0


def test_large_samples_match_scipy():
    rng = np.random.default_rng(9)
    ref, cur = rng.normal(size=200_000), rng.normal(0.01, 1, size=150_000)
    res = feature_drift(NumericReference.from_values(ref), cur)
    stat, p = ks_2samp_stat(ref, cur)
    expected = stats.ks_2samp(ref, cur)  # ~0.15 s: this p-value is in scipy's slow tail branch
    assert res.ks == stat == float(expected.statistic)
    assert res.ks_pvalue == p == pytest.approx(float(expected.pvalue), rel=1e-9)
    assert p < 0.05
    assert res.wasserstein == pytest.approx(wasserstein(ref, cur), rel=1e-12)
