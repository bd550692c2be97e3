"""Chi-square / Jensen-Shannon against scipy, Benjamini-Hochberg against statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from statsmodels.stats.multitest import multipletests

from retrainer.errors import StatisticsError
from retrainer.stats import OTHER, benjamini_hochberg, chi_square, count_categories, jensen_shannon

pytestmark = pytest.mark.filterwarnings("error")

REF = {"a": 500, "b": 300, "c": 200}


@pytest.mark.parametrize(
    "cur",
    [{"a": 500, "b": 300, "c": 200}, {"a": 450, "b": 330, "c": 220}, {"a": 100, "b": 50, "c": 400}, {"a": 30, "b": 20}],
)
def test_chi_square_equals_scipy_contingency(cur):
    table = np.array([[REF[k] for k in "abc"], [cur.get(k, 0) for k in "abc"]])
    expected = stats.chi2_contingency(table, correction=False)
    stat, p = chi_square(REF, cur)
    assert stat == pytest.approx(expected.statistic, rel=1e-12, abs=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)


def test_new_categories_are_pooled_into_other():
    cur = {"a": 400, "b": 300, "c": 200, "x": 40, "y": 30, "z": 30}
    table = np.array([[500, 300, 200, 0], [400, 300, 200, 100]])  # x, y, z -> OTHER
    expected = stats.chi2_contingency(table, correction=False)
    stat, p = chi_square(REF, cur)
    assert stat == pytest.approx(expected.statistic, rel=1e-12)
    assert p == pytest.approx(expected.pvalue, rel=1e-9)
    assert p < 1e-10  # a new category is drift
    assert OTHER == "__other__"


def test_chi_square_two_categories_has_no_yates_correction():
    stat, _ = chi_square({"a": 60, "b": 40}, {"a": 40, "b": 60})
    table = np.array([[60, 40], [40, 60]])
    assert stat == pytest.approx(stats.chi2_contingency(table, correction=False).statistic)


def test_chi_square_degenerate_and_bad_input():
    assert chi_square({"a": 10}, {"a": 99}) == (0.0, 1.0)
    with pytest.raises(StatisticsError, match="current"):
        chi_square(REF, {})
    with pytest.raises(StatisticsError, match="non-negative integer"):
        chi_square(REF, {"a": -1})


@pytest.mark.parametrize("cur", [REF, {"a": 1, "b": 1, "c": 1}, {"a": 10, "d": 5}, {"e": 3}])
def test_jensen_shannon_equals_scipy_base2(cur):
    keys = sorted(set(REF) | set(cur))
    p = np.array([REF.get(k, 0) for k in keys], float)
    q = np.array([cur.get(k, 0) for k in keys], float)
    assert jensen_shannon(REF, cur) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-9, abs=1e-7)
    assert 0.0 <= jensen_shannon(REF, cur) <= 1.0


def test_count_categories():
    counts = count_categories(np.array(["b", "a", None, "a", np.nan, 3], dtype=object))
    assert counts.counts == {"3": 1, "a": 2, "b": 1}
    assert counts.n_missing == 2


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("alpha", [0.01, 0.05, 0.2])
def test_benjamini_hochberg_equals_statsmodels(seed, alpha):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=30), rng.uniform(0, 0.01, size=10), [0.0, 1.0, 0.5, 0.5]])
    rng.shuffle(p)
    rejected, adjusted = benjamini_hochberg(p, alpha)
    sm_rejected, sm_adjusted, _, _ = multipletests(p, alpha=alpha, method="fdr_bh")
    assert rejected.tolist() == sm_rejected.tolist()
    np.testing.assert_array_equal(adjusted, sm_adjusted)


def test_benjamini_hochberg_edges():
    r, a = benjamini_hochberg([])
    assert r.size == 0 and a.size == 0
    with pytest.raises(StatisticsError, match="NaN"):
        benjamini_hochberg([0.1, np.nan])
