"""Hypothesis properties: finite, non-negative, zero on identical samples, and degenerate
input gives StatisticsError or insufficient_data - never a crash, warning or false drift."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from retrainer.errors import StatisticsError
from retrainer.stats import (
    CategoricalReference,
    NumericReference,
    chi_square,
    feature_drift,
    jensen_shannon,
    ks_2samp_stat,
    psi,
    wasserstein,
)

# numpy RuntimeWarnings (divide by zero, invalid value) count as failures here.
pytestmark = pytest.mark.filterwarnings("error")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
messy = st.one_of(finite, st.just(float("nan")), st.just(float("inf")), st.just(-float("inf")), st.sampled_from([0.0, 1.0]))
samples = arrays(np.float64, st.integers(0, 40), elements=messy)
clean = arrays(np.float64, st.integers(1, 40), elements=st.one_of(finite, st.sampled_from([0.0, 1.0, 2.0])))


def _finite(a):
    return a[np.isfinite(a)]


@SETTINGS
@given(samples, samples)
def test_low_level_statistics_are_finite_or_raise_clearly(a, b):
    fa, fb = _finite(a), _finite(b)
    for fn in (psi, wasserstein, ks_2samp_stat):
        if fa.size == 0 or fb.size == 0:
            with pytest.raises(StatisticsError, match="finite"):
                fn(a, b)
            continue
        value = fn(a, b)
        for v in value if isinstance(value, tuple) else (value,):
            assert math.isfinite(v) and v >= 0


@SETTINGS
@given(clean, clean)
def test_ks_and_wasserstein_agree_with_scipy(a, b):
    with warnings.catch_warnings():  # scipy warns when its exact method falls back; ours stays quiet
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = stats.ks_2samp(a, b)
    stat, p = ks_2samp_stat(a, b)
    assert stat == float(expected.statistic)
    assert p == pytest.approx(float(expected.pvalue), rel=1e-9)
    assert wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9, abs=1e-9)


@SETTINGS
@given(clean)
def test_identical_samples_show_no_drift(a):
    assert psi(a, a) == 0.0
    assert ks_2samp_stat(a, a) == (0.0, 1.0)
    assert wasserstein(a, a) == 0.0
    res = feature_drift(NumericReference.from_values(a, bins=5), a, min_count=1)
    assert (res.status, res.psi, res.ks, res.ks_pvalue, res.wasserstein) == ("ok", 0.0, 0.0, 1.0, 0.0)


@SETTINGS
@given(clean, samples, st.integers(1, 50))
def test_feature_drift_never_raises_on_data(ref, cur, min_count):
    res = feature_drift(NumericReference.from_values(ref), cur, min_count=min_count)
    n_finite = int(np.isfinite(cur).sum())
    assert res.n_cur == n_finite and res.n_nan == cur.size - n_finite
    if n_finite < min_count or ref.size < min_count:
        assert res.status == "insufficient_data" and res.reason and res.psi is None
    else:
        assert res.status == "ok"
        assert all(math.isfinite(v) and v >= 0 for v in (res.psi, res.ks, res.ks_pvalue, res.wasserstein))


counts = st.dictionaries(st.sampled_from(list("abcdef")), st.integers(0, 500), min_size=0, max_size=6)


@SETTINGS
@given(counts, counts)
def test_categorical_statistics(ref, cur):
    if sum(ref.values()) == 0 or sum(cur.values()) == 0:
        for fn in (chi_square, jensen_shannon):
            with pytest.raises(StatisticsError, match="no values"):
                fn(ref, cur)
        return
    stat, p = chi_square(ref, cur)
    js = jensen_shannon(ref, cur)
    assert math.isfinite(stat) and stat >= 0 and 0 <= p <= 1
    assert 0 <= js <= 1
    same_stat, same_p = chi_square(ref, ref)
    assert same_stat == pytest.approx(0.0, abs=1e-9) and same_p == pytest.approx(1.0)
    assert jensen_shannon(ref, ref) == pytest.approx(0.0, abs=1e-7)


@SETTINGS
@given(st.lists(st.sampled_from(["a", "b", "c", None]), max_size=60))
def test_categorical_feature_drift_identical_or_insufficient(values):
    non_missing = [v for v in values if v is not None]
    if not non_missing:
        with pytest.raises(StatisticsError):
            CategoricalReference.from_values(values)
        return
    res = feature_drift(CategoricalReference.from_values(values), values, min_count=10)
    if len(non_missing) < 10:
        assert res.status == "insufficient_data"
    else:
        assert res.status == "ok" and res.psi == 0.0 and res.chi2 == 0.0 and res.jensen_shannon == 0.0
