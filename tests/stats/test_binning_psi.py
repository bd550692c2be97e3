"""Binning and PSI against plainly written references (textbook loop, evidently 0.7)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from retrainer.errors import StatisticsError
from retrainer.stats import (
    bin_counts,
    counts_from_sorted,
    finite_values,
    bin_proportions,
    psi,
    psi_from_counts,
    quantile_edges,
)

pytestmark = pytest.mark.filterwarnings("error")


def textbook_psi(reference, current, edges, eps=1e-4):
    """PSI written out bin by bin: right-closed bins (lo, hi], empty bins get eps."""
    ref = [x for x in reference if math.isfinite(x)]
    cur = [x for x in current if math.isfinite(x)]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        r = sum(1 for x in ref if lo < x <= hi) / len(ref) or eps
        c = sum(1 for x in cur if lo < x <= hi) / len(cur) or eps
        total += (c - r) * math.log(c / r)
    return total


def test_quantile_edges_are_reference_deciles_with_open_ends():
    ref = np.arange(1, 101, dtype=float)
    edges = quantile_edges(ref, bins=10)
    assert edges[0] == -np.inf and edges[-1] == np.inf
    np.testing.assert_allclose(edges[1:-1], np.quantile(ref, np.linspace(0, 1, 11)[1:-1]))
    assert bin_counts(ref, edges).tolist() == [10] * 10


def test_ties_are_deduplicated_and_atoms_get_their_own_bin():
    ref = np.array([0.0] * 60 + list(np.linspace(1, 4, 40)))
    edges = quantile_edges(ref, bins=10)
    assert np.all(np.diff(edges) > 0)
    counts = bin_counts(ref, edges)
    # the atom at 0 sits alone in (prev(0), 0]; nothing in the reference is below it
    zero_bin = int(np.searchsorted(edges[1:-1], 0.0, side="left"))
    assert counts[zero_bin] == 60 and counts[:zero_bin].sum() == 0


def test_constant_reference_sees_shift_in_either_direction():
    ref = np.full(1000, 5.0)
    assert psi(ref, np.full(500, 5.0)) == 0.0
    assert psi(ref, np.full(500, 4.0)) > 1.0
    assert psi(ref, np.full(500, 6.0)) > 1.0


def test_bin_counts_excludes_and_counts_nan():
    edges = quantile_edges([1.0, 2.0, 3.0, 4.0], bins=2)
    values = [0.0, np.nan, 3.0, np.inf, -np.inf, 2.5]
    assert finite_values(values).n_nan == 3
    assert bin_counts(values, edges).tolist() == [2, 1]


def test_counts_from_sorted_equals_bin_counts():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=5000)
    cur = np.round(rng.normal(0.3, 1.2, size=7000), 1)  # ties on edges
    edges = quantile_edges(np.round(ref, 1), bins=10)
    assert counts_from_sorted(np.sort(cur), edges).tolist() == bin_counts(cur, edges).tolist()


def test_proportions_smooth_empty_bins_only():
    assert bin_proportions([2, 2, 0], eps=0.001).tolist() == [0.5, 0.5, 0.001]
    with pytest.raises(StatisticsError, match="empty"):
        bin_proportions([0, 0])


def test_psi_matches_textbook_loop():
    rng = np.random.default_rng(7)
    ref = rng.normal(size=2000)
    cur = np.concatenate([rng.normal(0.4, 1.3, size=1500), [np.nan, np.inf]])
    edges = quantile_edges(ref, bins=10)
    assert psi(ref, cur) == pytest.approx(textbook_psi(ref, cur, edges), rel=1e-12)
    # and with an empty current bin (current far to the right)
    far = rng.normal(5.0, 0.1, size=300)
    assert psi(ref, far) == pytest.approx(textbook_psi(ref, far, edges), rel=1e-12)


def test_psi_from_counts_textbook_values():
    assert psi_from_counts([50, 50], [50, 50]) == 0.0
    expected = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert psi_from_counts([50, 50], [90, 10]) == pytest.approx(expected, rel=1e-15)
    with pytest.raises(StatisticsError, match="same bins"):
        psi_from_counts([1, 2], [1, 2, 3])


def test_psi_rejects_empty_sides_clearly():
    with pytest.raises(StatisticsError, match="current"):
        psi([1.0, 2.0], [np.nan])
    with pytest.raises(StatisticsError, match="reference"):
        psi([], [1.0])


# --- evidently 0.7 ------------------------------------------------------------------
# evidently.legacy.calculations.stattests.psi._psi bins numeric columns with >20 unique
# values on np.histogram_bin_edges(reference ++ current, "sturges") (equal width over
# both samples, not reference quantiles) and replaces empty bins by 1e-4 when the
# smallest non-empty proportion exceeds 1e-4. So (1) on evidently's own bins our
# psi_from_counts must equal its PSI exactly, and (2) on our quantile bins the value
# differs but the verdict at evidently's default threshold 0.1 must agree.


@pytest.fixture(scope="module")
def evidently_psi():
    """evidently's own PSI function, imported (the whole package loads: ~10 s once per session)."""
    stattests = pytest.importorskip("evidently.legacy.calculations.stattests.psi")
    from evidently.legacy.core import ColumnType

    def run(reference, current, kind, threshold):
        column_type = {"num": ColumnType.Numerical, "cat": ColumnType.Categorical}[kind]
        return stattests._psi(reference, current, column_type, threshold)

    return run


@pytest.mark.parametrize("shift", [0.0, 0.2, 1.0, 4.0])
def test_psi_from_counts_equals_evidently_on_its_binning(evidently_psi, shift):
    rng = np.random.default_rng(11)
    ref = pd.Series(rng.normal(size=5000))
    cur = pd.Series(rng.normal(shift, 1.0, size=4000))
    expected, _ = evidently_psi(ref, cur, "num", 0.1)
    edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
    ours = psi_from_counts(np.histogram(ref, edges)[0], np.histogram(cur, edges)[0], eps=1e-4)
    assert ours == pytest.approx(float(expected), rel=1e-12)


@pytest.mark.parametrize(("shift", "drifted"), [(0.0, False), (0.05, False), (0.6, True), (1.5, True)])
def test_quantile_psi_agrees_with_evidently_verdict(evidently_psi, shift, drifted):
    rng = np.random.default_rng(12)
    ref = rng.normal(size=100_000)
    cur = rng.normal(shift, 1.0, size=100_000)
    theirs, their_drift = evidently_psi(pd.Series(ref), pd.Series(cur), "num", 0.1)
    ours = psi(ref, cur)
    assert bool(their_drift) is drifted
    assert (ours >= 0.1) is drifted
    if shift == 0.0:
        assert ours < 0.001 and theirs < 0.001
