"""Two-sample statistics on the empirical CDFs: Kolmogorov-Smirnov and Wasserstein-1.

Both are functionals of ``F_ref(x) - F_cur(x)`` evaluated on the merged sample, so one
stable merge of two *sorted* samples serves both (:func:`compare_sorted`); that is the
path the drift entry point uses. The plain functions sort for you.

Agreement with scipy (tested):

* KS statistic: the same float as ``scipy.stats.ks_2samp`` (same CDF values at the same
  points).
* KS p-value: scipy's ``method="auto"`` rule. When ``max(n_ref, n_cur) <= 10_000``
  scipy uses the exact distribution, and so do we, with scipy's own code: its statistic
  and lattice-path sums, its compiled kernel for unequal sizes loaded from its file (not
  through ``scipy.stats``, whose import costs ~0.4 s of every ``retrainer check``; issue
  20) - identical values. Where scipy's exact sum overflows it falls back to the asymptotic
  distribution, and there we hand the samples to ``scipy.stats.ks_2samp`` itself. Above that scipy evaluates Smirnov's ``kstwo.sf(D, en)`` with
  ``en = round(n*m/(n+m))``, and so do we, with one change: in the tail
  (``2.2 <= en * D**2 < 370``) scipy sums the Birnbaum-Tingey series term by term,
  O(en) - 0.9 s at en = 500_000, 2 s at 1M, per call. Its terms are a smooth bump in
  ``j / en`` with negligible ends, so we sum every ``en/2000``-th term in log space and
  scale by the stride (trapezoid rule, whose error decays exponentially for such sums):
  ~1 ms, within 1e-9 relative of scipy (tested on a grid up to en = 250_000, checked
  by hand up to 1M, where scipy takes 2 s and we differ by < 9e-10; p-values
  below ~1e-300 are subnormal floats and only agree to a few digits).
* Wasserstein-1: ``scipy.stats.wasserstein_distance``'s own ``np.sum(|gap| * deltas)``
  (pairwise summation) up to how the merged points are formed (relative difference ~1e-15).
  Not ``np.dot``: under multi-threaded OpenBLAS a 12k-point dot costs 2-7 ms on a busy
  2-core host (thread hand-off), against ~10 us for the multiply and sum.

>>> ks_2samp_stat([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
(0.0, 1.0)
>>> wasserstein([0.0, 1.0], [1.0, 2.0])
1.0
"""

from __future__ import annotations

import importlib.util
import math
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import special as _special

from retrainer.errors import StatisticsError
from retrainer.stats.binning import finite_values

__all__ = [
    "KS_EXACT_MAX_N",
    "NumericComparison",
    "compare_sorted",
    "ks_2samp_stat",
    "ks_sorted",
    "wasserstein",
    "wasserstein_sorted",
]

#: scipy's ``ks_2samp(method="auto")`` uses the exact null distribution up to this size.
KS_EXACT_MAX_N = 10_000

# catch_warnings mutates process-wide state; serialise our own uses of it across threads.
_scipy_warnings_lock = threading.Lock()


class NumericComparison(NamedTuple):
    """KS statistic and p-value plus Wasserstein-1 distance of two samples."""

    ks: float
    ks_pvalue: float
    wasserstein: float


def _sorted_finite(values: ArrayLike, name: str) -> NDArray[np.float64]:
    vals = np.sort(finite_values(values).values)
    if vals.size == 0:
        raise StatisticsError(f"the {name} sample has no finite values; a two-sample test needs at least one on each side")
    return vals


def _check_sorted(values: ArrayLike, name: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise StatisticsError(f"the {name} sample is empty; a two-sample test needs at least one value on each side")
    if not np.isfinite(arr[0]) or not np.isfinite(arr[-1]) or np.any(arr[1:] < arr[:-1]):
        raise StatisticsError(
            f"the {name} sample must be sorted ascending and finite; drop NaN/inf and np.sort() it, "
            "or call the unsorted variant"
        )
    return arr


def _abs_cdf_gap(
    ref: NDArray[np.float64], cur: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``|F_ref - F_cur|`` at each merged point but the last, and the gaps to the next point.

    A stable argsort of two concatenated sorted runs is a linear merge (timsort), and
    with reference values placed first among ties the running counts at the *last* of
    a run of equal values are exactly the right-continuous CDFs. Inside a tie run the
    counts are partial, but there the gap to the next point is 0, so callers mask or
    multiply by the gaps. Buffers are reused in place (``out=``) to keep memory traffic
    down: at 2M points each pass is a few milliseconds.
    """
    n, m = ref.size, cur.size
    both = np.concatenate([ref, cur])
    order = np.argsort(both, kind="stable")
    merged = np.take(both, order)
    deltas = np.subtract(merged[1:], merged[:-1], out=both[:-1])
    cur_seen = np.cumsum(order[:-1] >= n, out=order[:-1])
    gap = np.divide(cur_seen, m, out=merged[:-1])
    ref_seen = np.subtract(np.arange(1, n + m, dtype=np.int64), cur_seen, out=cur_seen)
    # ref_seen / n - cur_seen / m: the very floats scipy computes from its searchsorted indices.
    gap = np.subtract(ref_seen / n, gap, out=gap)
    return np.abs(gap, out=gap), deltas


def _smirnov_sf(n: float, d: float) -> float:
    """``scipy.special.smirnov(n, d)`` (one-sided) for large ``n``, from ~2000 terms.

    Birnbaum-Tingey: ``d * sum_j C(n, j) (1 - d - j/n)^(n-j) (d + j/n)^(j-1)``.
    """
    jmax = int(np.floor(n * (1.0 - d)))
    stride = max(1, jmax // 2000)
    j = np.arange(0, jmax + 1, stride, dtype=np.float64)
    x = d + j / n
    with np.errstate(divide="ignore"):  # the last term may be 0 ** k: log -> -inf, fine
        log_terms = (
            np.log(d)
            - np.log(n + 1.0)
            - _special.betaln(n - j + 1.0, j + 1.0)  # log C(n, j), without cancellation
            + (n - j) * np.log1p(-x)
            + (j - 1.0) * np.log(x)
        )
    return float(np.exp(_special.logsumexp(log_terms) + np.log(stride)))


def _ks_pvalue(d: float, n: int, m: int) -> float:
    """``scipy.stats.kstwo.sf(d, round(n*m/(n+m)))``, as ks_2samp's asymptotic branch."""
    big, small = float(max(n, m)), float(min(n, m))
    en = float(np.round(big * small / (big + small)))
    nd2 = en * d * d
    # Outside the slow branch of scipy's _kolmogn, scipy itself is fast: use it.
    if en <= 140 or d >= 0.5 or not 2.2 <= nd2 < 370.0 or en * d >= en - 1:
        from scipy.stats import kstwo  # deferred: ~0.4 s to import, and a small check never gets here

        return float(np.clip(kstwo.sf(d, en), 0.0, 1.0))
    return float(np.clip(2.0 * _smirnov_sf(en, d), 0.0, 1.0))


def _scipy_small_sample_ks(ref: NDArray[np.float64], cur: NDArray[np.float64]) -> tuple[float, float]:
    # scipy.stats itself, for what _exact_small_sample_ks leaves to it. scipy warns when it falls
    # back to the asymptotic distribution; the fallback is the right answer, the warning noise.
    from scipy.stats import ks_2samp  # deferred: ~0.4 s to import (issue 20)

    with _scipy_warnings_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ks_2samp(ref, cur, method="auto")
    return float(res.statistic), float(res.pvalue)


_kernel_lock = threading.Lock()
_outer_prob_kernel: list[Callable[[int, int, int, int], float] | None] = []


def _unequal_sizes_kernel() -> Callable[[int, int, int, int], float] | None:
    """scipy's compiled ``_compute_outer_prob_inside_method`` (what ``ks_2samp`` calls for the
    exact two-sided p-value of unequal sizes), loaded from its file in scipy/stats without running
    ``scipy/stats/__init__`` (all of scipy.stats, ~0.4 s). None if this scipy has no such file."""
    with _kernel_lock:
        if not _outer_prob_kernel:
            kernel = None
            try:
                import scipy

                for path in sorted(Path(scipy.__file__).parent.joinpath("stats").glob("_stats_pythran.*")):
                    spec = importlib.util.spec_from_file_location("_stats_pythran", path)
                    if spec is not None and spec.loader is not None:
                        module = importlib.util.module_from_spec(spec)
                        spec.loader.exec_module(module)
                        kernel = module._compute_outer_prob_inside_method
                        break
            except (ImportError, OSError, AttributeError):
                kernel = None
            _outer_prob_kernel.append(kernel)
        return _outer_prob_kernel[0]


def _prob_outside_square(n: int, h: int) -> float:
    """scipy's ``_compute_prob_outside_square``: ``P(D_{n,n} >= h/n)``, Horner-like, term for term."""
    p = 0.0
    k = int(np.floor(n / h))
    while k >= 0:
        p1 = 1.0
        for j in range(h):
            p1 = (n - k * h - j) * p1 / (n + k * h + j + 1)
        p = p1 * (1.0 - p)
        k -= 1
    return 2 * p


def _exact_small_sample_ks(ref: NDArray[np.float64], cur: NDArray[np.float64]) -> tuple[float, float]:
    """``scipy.stats.ks_2samp(ref, cur)`` (two-sided, exact) for sorted samples, step for step."""
    n1, n2 = ref.size, cur.size
    both = np.concatenate([ref, cur])
    gaps = np.searchsorted(ref, both, side="right") / n1 - np.searchsorted(cur, both, side="right") / n2
    below, above = np.clip(-gaps[np.argmin(gaps)], 0, 1), gaps[np.argmax(gaps)]
    d = below if below > above else above
    g = math.gcd(n1, n2)
    lcm = (n1 // g) * n2
    h = int(np.round(d * lcm))  # scipy reports D as the lattice value h / lcm
    if h == 0:
        return 0.0, 1.0
    kernel = None if n1 == n2 else _unequal_sizes_kernel()
    prob = math.nan
    if n1 == n2 or kernel is not None:
        try:
            with np.errstate(invalid="raise", over="raise"):
                prob = _prob_outside_square(n1, h) if n1 == n2 else float(kernel(n1, n2, g, h))  # type: ignore[misc]
        except (FloatingPointError, OverflowError):
            prob = math.nan
    if not 0 <= prob <= 1:  # overflow (scipy goes asymptotic) or no kernel: scipy decides
        return _scipy_small_sample_ks(ref, cur)
    return float(h * 1.0 / lcm), float(np.clip(prob, 0, 1))


def _ks(
    ref: NDArray[np.float64],
    cur: NDArray[np.float64],
    absgap: NDArray[np.float64],
    deltas: NDArray[np.float64],
) -> tuple[float, float]:
    if max(ref.size, cur.size) <= KS_EXACT_MAX_N:
        return _exact_small_sample_ks(ref, cur)
    # Only the ends of tie runs (gap to the next value > 0) are CDF points; the last
    # merged point is left out (both CDFs are 1 there). The unmasked maximum is an upper
    # bound, so if it sits at a run end it is the answer - always so without ties.
    k = int(np.argmax(absgap)) if absgap.size else 0
    if absgap.size and deltas[k] > 0:
        d = float(absgap[k])
    else:
        d = float(np.max(absgap, where=deltas > 0, initial=0.0))
    if d == 0.0:  # identical ECDFs
        return 0.0, 1.0
    return d, _ks_pvalue(d, ref.size, cur.size)


def _area(absgap: NDArray[np.float64], deltas: NDArray[np.float64]) -> float:
    """``sum(absgap * deltas)``, the Wasserstein-1 integral; overwrites ``absgap``.

    Multiply-and-sum in numpy's own loops, not BLAS (see the module notes).
    """
    return float(np.multiply(absgap, deltas, out=absgap).sum())


def _compare(ref: NDArray[np.float64], cur: NDArray[np.float64]) -> NumericComparison:
    absgap, deltas = _abs_cdf_gap(ref, cur)
    d, p = _ks(ref, cur, absgap, deltas)
    return NumericComparison(d, p, _area(absgap, deltas))


def compare_sorted(reference_sorted: ArrayLike, current_sorted: ArrayLike) -> NumericComparison:
    """KS statistic, KS p-value and Wasserstein-1 of two sorted, finite samples, from one merge."""
    return _compare(_check_sorted(reference_sorted, "reference"), _check_sorted(current_sorted, "current"))


def ks_sorted(reference_sorted: ArrayLike, current_sorted: ArrayLike) -> tuple[float, float]:
    """Two-sided KS ``(statistic, pvalue)`` of two sorted, finite samples (see module notes)."""
    ref = _check_sorted(reference_sorted, "reference")
    cur = _check_sorted(current_sorted, "current")
    if max(ref.size, cur.size) <= KS_EXACT_MAX_N:
        return _exact_small_sample_ks(ref, cur)
    absgap, deltas = _abs_cdf_gap(ref, cur)
    return _ks(ref, cur, absgap, deltas)


def wasserstein_sorted(reference_sorted: ArrayLike, current_sorted: ArrayLike) -> float:
    """Wasserstein-1 distance ``integral |F_ref - F_cur| dx`` of two sorted, finite samples."""
    ref = _check_sorted(reference_sorted, "reference")
    cur = _check_sorted(current_sorted, "current")
    absgap, deltas = _abs_cdf_gap(ref, cur)
    return _area(absgap, deltas)


def ks_2samp_stat(reference: ArrayLike, current: ArrayLike) -> tuple[float, float]:
    """Two-sided two-sample KS ``(statistic, pvalue)``, as ``scipy.stats.ks_2samp``.

    NaN and +/-inf are dropped first; raises :class:`StatisticsError` if a side is left empty.
    """
    ref, cur = _sorted_finite(reference, "reference"), _sorted_finite(current, "current")
    return ks_sorted(ref, cur)


def wasserstein(reference: ArrayLike, current: ArrayLike) -> float:
    """Wasserstein-1 (earth mover's) distance, as ``scipy.stats.wasserstein_distance``.

    In the units of the data. NaN and +/-inf are dropped first.
    """
    return wasserstein_sorted(_sorted_finite(reference, "reference"), _sorted_finite(current, "current"))
