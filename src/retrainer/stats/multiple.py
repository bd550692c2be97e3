"""Multiple testing: Benjamini-Hochberg false discovery rate control, Bonferroni's combination, and
the partial conjunction p-value (Simes' combination is its k = 1 case).

Testing 50 features for drift at alpha = 0.05 flags ~2.5 of them by chance every run;
controlling the FDR across features keeps a drift trigger from firing on noise.

>>> rejected, adjusted = benjamini_hochberg([0.01, 0.04, 0.03, 0.5], alpha=0.05)
>>> rejected.tolist()
[True, False, False, False]
>>> adjusted.round(4).tolist()
[0.04, 0.0533, 0.0533, 0.5]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from retrainer.errors import StatisticsError

__all__ = ["benjamini_hochberg", "bonferroni", "partial_conjunction"]


def benjamini_hochberg(pvalues: ArrayLike, alpha: float = 0.05) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """``(rejected, adjusted_pvalues)`` in input order, as statsmodels ``multipletests(method="fdr_bh")``."""
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    if not 0.0 < alpha < 1.0:
        raise StatisticsError(f"alpha must be in (0, 1), got {alpha!r}")
    if p.size == 0:
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=np.float64)
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise StatisticsError("p-values must be in [0, 1] and not NaN; drop the features whose test could not run")
    m = p.size
    order = np.argsort(p)
    p_sorted = p[order]
    ecdf = np.arange(1, m + 1, dtype=np.float64) / m
    # Step-up: reject the k smallest, where k is the largest rank with p_(k) <= k/m * alpha.
    below = p_sorted <= ecdf * alpha
    k = int(np.nonzero(below)[0].max()) + 1 if below.any() else 0
    reject_sorted = np.zeros(m, dtype=bool)
    reject_sorted[:k] = True
    # Adjusted p: running minimum from the top of p_(i) * m / i, capped at 1.
    adjusted_sorted = np.minimum.accumulate((p_sorted / ecdf)[::-1])[::-1]
    adjusted_sorted = np.minimum(adjusted_sorted, 1.0)
    rejected = np.empty(m, dtype=bool)
    adjusted = np.empty(m, dtype=np.float64)
    rejected[order] = reject_sorted
    adjusted[order] = adjusted_sorted
    return rejected, adjusted


def bonferroni(pvalues: Sequence[float]) -> float:
    """One p-value for "none of these K nulls is false": ``min(1, K · min p)`` (1 for none). Valid
    under any dependence between the tests (a trigger's metrics share their rows: precision,
    recall and f1 share the true positives), and a rule that fires when any p is below α fired
    exactly when this is below K·α.

    >>> bonferroni([0.004, 0.3])
    0.008
    """
    return min(1.0, len(pvalues) * min(pvalues)) if len(pvalues) else 1.0


def partial_conjunction(pvalues: Sequence[float], k: int = 1) -> float:
    """One p-value for "fewer than ``k`` of these nulls are false" (Benjamini & Heller, 2008,
    Simes-based): ``min_{i=1..m-k+1} (m-k+1)/i · p_(k-1+i)``, capped at 1 (1 for none).

    ``k = 1`` is Simes' combination ("none of them is false": a policy that fires on any one test);
    ``k = m`` is the largest p-value (the intersection-union test: a policy that needs every test to
    fire). Valid under independence and the positive dependence Simes needs. ``k`` above the
    number of p-values is clamped to it.

    >>> partial_conjunction([0.01, 0.04, 0.03])          # Simes: min(3*0.01, 3/2*0.03, 3/3*0.04)
    0.03
    >>> partial_conjunction([0.01, 0.04, 0.03], k=3)     # every one must be false: the largest
    0.04
    >>> round(partial_conjunction([0.01, 0.04, 0.03], k=2), 4)  # min(2*0.03, 2/2*0.04)
    0.04
    """
    p = np.sort(np.asarray(pvalues, dtype=np.float64).ravel())
    m = p.size
    if m == 0:
        return 1.0
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise StatisticsError(f"k must be a positive int, got {k!r}")
    k = min(int(k), m)
    tail = p[k - 1:]  # p_(k), ..., p_(m)
    return float(min(1.0, np.min((m - k + 1) * tail / np.arange(1, tail.size + 1))))
