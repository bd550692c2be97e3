"""The partial conjunction p-value (Benjamini & Heller 2008, Simes-based) behind a fleet model's p."""

from __future__ import annotations

import numpy as np
import pytest

from retrainer.errors import StatisticsError
from retrainer.stats.multiple import partial_conjunction


def textbook(p: list[float], u: int) -> float:
    """Benjamini & Heller (2008), eq. for the Simes-based p^{u/n}: min over i = 1..n-u+1 of
    (n-u+1)/i * p_(u-1+i), written as a plain loop over the sorted p-values."""
    s, n = sorted(p), len(p)
    return min(1.0, min((n - u + 1) / i * s[u - 2 + i] for i in range(1, n - u + 2)))


@pytest.mark.parametrize("seed", range(20))
def test_it_is_the_textbook_formula_and_its_two_ends(seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 8))
    p = rng.random(m) ** 3
    for k in range(1, m + 1):
        assert partial_conjunction(p, k) == pytest.approx(textbook(list(p), k), rel=1e-12)
    s = np.sort(p)
    assert partial_conjunction(p, 1) == pytest.approx(min(1.0, float(np.min(s * m / np.arange(1, m + 1)))))  # Simes
    assert partial_conjunction(p, m) == pytest.approx(float(s[-1]))  # every null must be false: the largest


def test_it_is_valid_when_fewer_than_k_nulls_are_false() -> None:
    # Three tests, one with a real effect (p ~ 0), two null: "at least 2 are false" is the null here.
    rng = np.random.default_rng(0)
    p = np.column_stack([np.full(100_000, 1e-9), rng.random(100_000), rng.random(100_000)])
    pc = np.array([partial_conjunction(row, 2) for row in p])
    for alpha in (0.01, 0.05, 0.2):
        assert np.mean(pc <= alpha) <= alpha * 1.05
    # With k = 1 the same rows reject always: one false null is enough.
    assert all(partial_conjunction(row, 1) <= 3.1e-9 for row in p[:100])


def test_edges() -> None:
    assert partial_conjunction([], 2) == 1.0
    assert partial_conjunction([0.2, 0.01], k=5) == 0.2  # k above m is clamped: every one needed
    with pytest.raises(StatisticsError, match="k must be a positive int"):
        partial_conjunction([0.1], k=0)
