"""Reference-quantile binning shared by PSI and the drift entry point.

Bins are right-closed, ``(edges[i], edges[i + 1]]``, with open outer bins
(``edges[0] == -inf``, ``edges[-1] == +inf``) so every finite value of a
*current* sample lands in some bin, however far it drifted.

>>> edges = quantile_edges([1.0, 2.0, 3.0, 4.0], bins=2)
>>> edges.tolist()
[-inf, 2.5, inf]
>>> bin_counts([0.0, 2.5, 3.0, float("nan")], edges).tolist()
[2, 1]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from retrainer.errors import StatisticsError

__all__ = [
    "FiniteValues",
    "bin_counts",
    "counts_from_sorted",
    "finite_values",
    "bin_proportions",
    "quantile_edges",
]


class FiniteValues(NamedTuple):
    """The finite part of a sample and how many values were dropped (NaN or +/-inf)."""

    values: NDArray[np.float64]
    n_nan: int


def finite_values(values: ArrayLike) -> FiniteValues:
    """Drop NaN and +/-inf, counting them; infinities have no place on a distance scale.

    >>> finite_values([1.0, float("nan"), float("inf"), 2.0])
    FiniteValues(values=array([1., 2.]), n_nan=2)
    """
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise StatisticsError(
            f"expected numeric values, got {type(values).__name__} that cannot be read as float: {exc}; "
            "pass numeric columns here and categorical ones to retrainer.stats.categorical"
        ) from exc
    finite = np.isfinite(arr)
    # The all-finite case is the common one: skip the copy.
    if finite.all():
        return FiniteValues(arr, 0)
    kept = arr[finite]
    return FiniteValues(kept, int(arr.size - kept.size))


def quantile_edges(reference: ArrayLike, bins: int = 10) -> NDArray[np.float64]:
    """Bin edges at the reference quantiles, with open outer bins.

    Tied quantiles (discrete or constant data) are merged, so there may be fewer than
    ``bins`` bins. Where a quantile value repeats, the reference has a point mass there;
    an extra edge just below it gives that atom a bin of its own, so a current sample
    that moves *below* a constant reference is still seen.

    >>> quantile_edges([5.0, 5.0, 5.0]).tolist()
    [-inf, 4.999999999999999, 5.0, inf]

    Raises :class:`StatisticsError` if ``reference`` has no finite value.
    """
    if int(bins) != bins or bins < 1:
        raise StatisticsError(f"bins must be a positive integer, got {bins!r}")
    ref = finite_values(reference).values
    if ref.size == 0:
        raise StatisticsError(
            "cannot bin an empty reference (no finite values); build the reference from a non-empty sample"
        )
    inner = np.quantile(ref, np.linspace(0.0, 1.0, int(bins) + 1)[1:-1]) if bins > 1 else np.empty(0)
    unique, repeats = np.unique(inner, return_counts=True)
    atoms = unique[repeats > 1]
    if ref.min() == ref.max():  # constant reference: one atom, whatever ``bins`` is
        atoms = np.array([ref[0]])
        unique = atoms
    below_atoms = np.nextafter(atoms, -np.inf)
    inner_edges = np.unique(np.concatenate([unique, below_atoms]))
    return np.concatenate([[-np.inf], inner_edges, [np.inf]])


def _inner(edges: ArrayLike) -> NDArray[np.float64]:
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise StatisticsError(
            "edges must be a strictly increasing 1-D array of at least 2 values; build them with quantile_edges()"
        )
    return e[1:-1]


def bin_counts(values: ArrayLike, edges: ArrayLike) -> NDArray[np.int64]:
    """Count finite ``values`` per right-closed bin; NaN/inf are skipped (see :func:`finite_values`).

    Values outside ``[edges[0], edges[-1]]`` are clipped into the outer bins.
    """
    inner = _inner(edges)
    vals = finite_values(values).values
    idx = np.searchsorted(inner, vals, side="left")
    return np.bincount(idx, minlength=inner.size + 1).astype(np.int64)


def counts_from_sorted(sorted_values: NDArray[np.float64], edges: ArrayLike) -> NDArray[np.int64]:
    """:func:`bin_counts` for an already sorted, all-finite sample: O(bins * log n).

    The drift path sorts each current column once anyway (for KS and Wasserstein);
    counting then costs a handful of binary searches instead of a pass over the data.
    """
    inner = _inner(edges)
    at_or_below = np.searchsorted(sorted_values, inner, side="right")
    return np.diff(np.concatenate([[0], at_or_below, [sorted_values.size]])).astype(np.int64)


def bin_proportions(counts: ArrayLike, eps: float = 1e-4) -> NDArray[np.float64]:
    """Turn bin counts into proportions, replacing empty bins by ``eps``.

    ``ln(c / r)`` is undefined for an empty bin; the usual fix (also evidently's) is
    to give empty bins a small proportion. Non-empty bins are left as they are (no
    renormalisation), so the result matches the textbook PSI tables.

    >>> bin_proportions([3, 1, 0], eps=0.01).tolist()
    [0.75, 0.25, 0.01]
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0 or np.any(c < 0) or not np.all(np.isfinite(c)):
        raise StatisticsError("counts must be a non-empty 1-D array of non-negative finite numbers")
    total = c.sum()
    if total <= 0:
        raise StatisticsError("all bin counts are zero: the sample is empty (or all NaN); nothing to compare")
    if not eps > 0:
        raise StatisticsError(f"eps must be > 0 to smooth empty bins, got {eps!r}")
    p = c / total
    p[c == 0] = eps
    return p
