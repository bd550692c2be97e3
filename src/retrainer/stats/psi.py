"""Population Stability Index.

``PSI = sum_i (c_i - r_i) * ln(c_i / r_i)`` over bins, where ``r_i`` and ``c_i`` are the
reference and current proportions. Bins come from reference quantiles
(:func:`retrainer.stats.binning.quantile_edges`), so each reference bin holds about the
same mass and the index is not dominated by the tails. Rule of thumb: < 0.1 stable,
0.1-0.25 moderate shift, > 0.25 major shift.

>>> psi_from_counts([50, 50], [50, 50])
0.0
>>> round(psi_from_counts([50, 50], [90, 10]), 4)
0.8789
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from retrainer.errors import StatisticsError
from retrainer.stats.binning import bin_counts, bin_proportions, finite_values, quantile_edges

__all__ = ["psi", "psi_from_counts"]


def psi_from_counts(ref_counts: ArrayLike, cur_counts: ArrayLike, eps: float = 1e-4) -> float:
    """PSI from per-bin counts on the same bins (the fast path for precomputed reference counts).

    Empty bins get proportion ``eps`` on their side (see :func:`binning.bin_proportions`).
    """
    r_counts = np.asarray(ref_counts)
    c_counts = np.asarray(cur_counts)
    if r_counts.shape != c_counts.shape:
        raise StatisticsError(
            f"reference and current counts must be on the same bins, got {r_counts.shape} and {c_counts.shape}"
        )
    r = bin_proportions(r_counts, eps)
    c = bin_proportions(c_counts, eps)
    # Every term is >= 0 ((c - r) and ln(c / r) share a sign); a bin empty on both
    # sides contributes (eps - eps) * ln(1) == 0, as it should.
    return float(np.sum((c - r) * np.log(c / r)))


def psi(reference: ArrayLike, current: ArrayLike, bins: int = 10, eps: float = 1e-4) -> float:
    """PSI of ``current`` against ``reference`` on ``bins`` reference-quantile bins.

    NaN and +/-inf are dropped from both samples first. Raises :class:`StatisticsError`
    if either sample has no finite value.
    """
    ref = finite_values(reference).values
    cur = finite_values(current).values
    if ref.size == 0 or cur.size == 0:
        side = "reference" if ref.size == 0 else "current"
        raise StatisticsError(f"PSI needs finite values on both sides; the {side} sample has none")
    edges = quantile_edges(ref, bins)
    return psi_from_counts(bin_counts(ref, edges), bin_counts(cur, edges), eps)
