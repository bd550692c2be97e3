"""Drift from frozen-bin counts against the raw values: PSI exact, KS and Wasserstein bracketed
(scipy on the raw values is the reference), categoricals exact on their bins."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from retrainer.errors import StatisticsError
from retrainer.stats.drift import CategoricalReference, NumericReference, feature_drift
from retrainer.stats.histogram import (
    FeatureHistogram,
    bins_from_dict,
    frozen_bins,
    histogram_drift,
    histograms_drift,
    ks_pvalue_asymptotic,
    merge_counts,
)
from retrainer.stats.psi import psi_from_counts

RNG = np.random.default_rng(22)


def normal(n: int, shift: float = 0.0) -> np.ndarray:
    return RNG.normal(size=n) + shift


def lognormal(n: int, shift: float = 0.0) -> np.ndarray:
    return RNG.lognormal(size=n) * np.exp(shift)


def bimodal(n: int, shift: float = 0.0) -> np.ndarray:
    return np.concatenate([RNG.normal(-2, 0.5, n // 2), RNG.normal(2, 0.5, n - n // 2)]) + shift


@pytest.mark.parametrize("family", [normal, lognormal, bimodal])
@pytest.mark.parametrize("shift", [0.0, 0.05, 0.4])
@pytest.mark.parametrize("n_cur", [500, 40_000])
def test_numeric_counts_give_exact_psi_and_bracket_ks_and_wasserstein(family, shift: float, n_cur: int) -> None:
    ref = NumericReference.from_values(family(60_000), sample_size=12_000, seed=1)
    bins = frozen_bins(ref)
    current = family(n_cur, shift)
    current[:7] = np.nan  # nulls are counted, not binned
    hist = bins.count(current)
    got = histogram_drift(bins, hist, min_count=30)
    raw = feature_drift(ref, current, min_count=30)
    finite = current[np.isfinite(current)]
    assert got.psi == raw.psi  # the same float: PSI bins are unions of frozen bins
    assert (got.n_cur, got.n_nan) == (finite.size, 7)
    ks = sps.ks_2samp(ref.sorted_sample, finite).statistic
    assert got.ks - 1e-12 <= ks <= got.ks + got.ks_bound + 1e-12
    w = sps.wasserstein_distance(ref.sorted_sample, finite)
    assert abs(w - got.wasserstein) <= got.wasserstein_bound + 1e-9
    # The bracket is tight where it matters: about one percentile bin of each side.
    assert got.ks_bound <= 0.03 + 2 * (shift > 0.1) * 0.05


def test_ks_pvalue_follows_scipys_distribution() -> None:
    for d, n, m in [(0.02, 12_000, 5_000), (0.05, 12_000, 1_000), (0.01, 12_000, 100_000), (0.1, 200, 300)]:
        assert ks_pvalue_asymptotic(d, n, m) == pytest.approx(sps.kstwo.sf(d, round(n * m / (n + m))), rel=0.02, abs=1e-3)
    assert ks_pvalue_asymptotic(0.0, 10, 10) == 1.0


def test_counts_merge_by_addition_and_keep_moments() -> None:
    ref = NumericReference.from_values(normal(20_000), sample_size=5_000)
    bins = frozen_bins(ref)
    values = normal(9_000, 0.3)
    parts = [bins.count(chunk) for chunk in np.array_split(values, 7)]
    whole = bins.count(values)
    merged = merge_counts(parts, bins.n_bins)
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert (merged.n, merged.nulls, merged.min, merged.max) == (whole.n, whole.nulls, values.min(), values.max())
    assert merged.sum / merged.n == pytest.approx(values.mean(), rel=1e-12)
    assert merged.sum_sq / merged.n - (merged.sum / merged.n) ** 2 == pytest.approx(values.var(), rel=1e-9)
    assert merge_counts([], bins.n_bins).n == 0


def test_values_outside_the_reference_land_in_under_and_overflow() -> None:
    bins = frozen_bins(NumericReference.from_values(np.arange(100.0), bins=4, sample_size=None))
    h = bins.count([-5.0, 0.0, 99.0, 1e9, float("inf")])
    assert h.counts[0] == 1 and h.counts[-1] == 1 and h.nulls == 1 and h.n == 4


def test_categorical_bins_pool_the_tail_and_new_categories() -> None:
    ref_values = np.array(["a"] * 500 + ["b"] * 300 + ["c"] * 150 + ["d"] * 50, dtype=object)
    ref = CategoricalReference.from_values(ref_values)
    bins = frozen_bins(ref, top_k=2)
    assert bins.labels == ["a", "b", "__other__", "__new__"]
    cur = np.array(["a"] * 100 + ["c"] * 40 + ["d"] * 10 + ["zz"] * 30 + [None] * 5, dtype=object)
    h = bins.count(cur)
    assert h.counts.tolist() == [100, 0, 50, 30] and (h.n, h.nulls) == (180, 5)
    got = histogram_drift(bins, h, min_count=30)
    assert got.psi == psi_from_counts([500, 300, 200, 0], [100, 0, 50, 30])
    assert got.jensen_shannon == pytest.approx(jensenshannon([500, 300, 200, 0], [100, 0, 50, 30], base=2), abs=1e-12)
    table = np.array([[500, 300, 200, 0], [100, 0, 50, 30]])
    assert got.chi2 == pytest.approx(sps.chi2_contingency(table, correction=False)[0], rel=1e-12)


def test_categorical_chi_square_equals_the_raw_path_when_the_reference_fits_the_top() -> None:
    ref = CategoricalReference.from_values(np.array(list("aabbbcccc") * 40, dtype=object))
    bins = frozen_bins(ref)
    cur = np.array(list("aaabbcq") * 30, dtype=object)
    got = histogram_drift(bins, bins.count(cur), min_count=30)
    raw = feature_drift(ref, cur, min_count=30)
    assert (got.chi2, got.chi2_pvalue) == (pytest.approx(raw.chi2, rel=1e-12), pytest.approx(raw.chi2_pvalue, rel=1e-9))


def test_bins_round_trip_and_guard_their_shape() -> None:
    num = frozen_bins(NumericReference.from_values(normal(3_000), sample_size=1_000))
    cat = frozen_bins(CategoricalReference.from_values(np.array(list("abcab"), dtype=object)))
    for bins in (num, cat):
        again = bins_from_dict(bins.to_dict())
        assert again.to_dict() == bins.to_dict()
    values = normal(400)
    assert histogram_drift(bins_from_dict(num.to_dict()), num.count(values)).psi == histogram_drift(num, num.count(values)).psi
    with pytest.raises(StatisticsError, match="re-bin"):
        histogram_drift(num, FeatureHistogram(np.zeros(3, dtype=np.int64), 100, 0))
    with pytest.raises(StatisticsError, match="version"):
        bins_from_dict({**num.to_dict(), "version": 99})
    few = histogram_drift(num, num.count(values[:10]), min_count=30)
    assert few.status == "insufficient_data" and "wait for more data" in few.reason


def test_many_features_at_once_equal_one_at_a_time() -> None:
    refs = {"n": NumericReference.from_values(normal(8_000), sample_size=3_000),
            "l": NumericReference.from_values(lognormal(8_000), bins=7, sample_size=2_000),
            "b": NumericReference.from_values(bimodal(8_000), sample_size=4_000),
            "c": CategoricalReference.from_values(np.array(list("aaabbbbcd") * 300, dtype=object)),
            "z": CategoricalReference.from_values(np.array(list("xy") * 300, dtype=object))}
    bins = {k: frozen_bins(r) for k, r in refs.items()}
    cur = {"n": normal(3_000, 0.2), "l": lognormal(500), "b": bimodal(20), "c": np.array(list("aabq") * 100, dtype=object),
           "z": np.array(list("xy") * 100, dtype=object)}
    hists = {k: bins[k].count(cur[k]) for k in bins}
    many = histograms_drift(bins, hists, min_count=30)
    assert [r.feature for r in many] == list(bins)
    for r in many:
        one = histogram_drift(bins[r.feature], hists[r.feature], feature=r.feature, min_count=30)
        assert r.status == one.status
        if r.status == "ok":
            assert r.psi == one.psi  # exact
            for key in ("ks", "ks_bound", "wasserstein", "wasserstein_bound", "pvalue", "chi2", "jensen_shannon"):
                a, b = getattr(r, key), getattr(one, key)
                assert (a is None and b is None) or a == pytest.approx(b, rel=1e-9, abs=1e-12), key
