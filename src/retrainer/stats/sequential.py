"""An anytime-valid one-sided test on paired differences bounded in [-1, 1]: the guard's test.

After a promotion the replaced champion keeps answering in shadow; each labelled request gives a
paired difference ``x_i = correct_new - correct_old`` in ``{-1, 0, 1}`` (any value in [-1, 1]
works). The guard asks: is the new champion worse than the old one by more than ``margin``?

    H0: mean >= -margin (no worse than the margin)    vs    H1: mean < -margin    -> roll back

The test is a *betting* test martingale (Waudby-Smith & Ramdas, "Estimating means of bounded
random variables by betting", JRSS-B 2023; the same family as Howard et al. 2021's confidence
sequences, but it adapts to the variance, which for paired differences is only the share of
rows where the two models disagree)::

    K_t = prod_{i <= t} (1 + lam_i (m - x_i)),    m = -margin,    0 <= lam_i <= c / (1 - m)

with ``lam_i`` chosen from ``x_1 .. x_{i-1}`` only (predictable): the aGRAPA bet
``(m - mu_hat) / (sigma_hat^2 + (m - mu_hat)^2)`` clipped to ``[0, c/(1 - m)]``, ``c = 1/2``.
Under H0 every factor has expectation ``1 + lam (m - mean) <= 1``, so ``K`` is a nonnegative
supermartingale and Ville's inequality gives ``P(sup_t K_t >= 1/alpha) <= alpha``: the guard
may look after every label, every day, as often as it likes, and roll back the first time the
running maximum of ``K`` reaches ``1/alpha``. Rows must be passed in the order their labels
arrived (append-only), so each look extends the same sequence rather than reshuffling it.

``bound`` is the matching anytime-valid upper confidence bound on the mean difference: the
smallest null ``m`` this data already rejects (bisection; for display, the decision is the test
at ``m = -margin``).

>>> import numpy as np
>>> guard_sequence(np.zeros(100), margin=0.02, alpha=0.05).reject
False
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from retrainer.errors import StatisticsError

# Largest share of wealth bet per observation (c of the module docstring): 1/2 is Waudby-Smith &
# Ramdas' default; it keeps log(1 + lam (m - x)) bounded, so a single unlucky row cannot wipe out
# the evidence gathered so far.
_MAX_BET = 0.5
# Prior pseudo-observation for the running mean/variance that set the bet: start betting nothing
# (mean at the null) and with the variance of a fair coin on {-1, 1} scaled down, so early bets are small.
_PRIOR_VAR = 0.25


@dataclass(frozen=True)
class SequentialResult:
    """The guard's anytime-valid verdict on the differences seen so far.

    ``reject``: the new champion is worse by more than the margin -> roll back.
    ``bound``: anytime-valid upper confidence bound on the mean difference (level 1 - alpha).
    ``statistic``: log of the running maximum of the test martingale (rejects at ``log(1/alpha)``).
    """

    reject: bool
    bound: float
    n: int
    statistic: float
    threshold: float = math.nan
    mean: float = math.nan

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for k in ("bound", "statistic", "threshold", "mean"):
            out[k] = float(out[k]) if math.isfinite(out[k]) else None
        return out


def log_wealth(diffs: np.ndarray, null_mean: float) -> np.ndarray:
    """``log K_t`` for every prefix ``t`` along the last axis (vectorised over leading axes).

    The bets use only earlier rows: running sums shifted by one, with one prior pseudo-row at
    the null mean and ``_PRIOR_VAR``.
    """
    x = np.asarray(diffs, dtype=np.float64)
    m = float(null_mean)
    if not -1.0 < m < 1.0:
        raise StatisticsError(f"the null mean must be inside (-1, 1), got {m}")
    t = np.arange(1, x.shape[-1] + 1, dtype=np.float64)  # pseudo-row + earlier rows
    s = np.cumsum(x, axis=-1)
    s2 = np.cumsum(x * x, axis=-1)
    zeros = np.zeros(x.shape[:-1] + (1,))
    s_prev = np.concatenate([zeros, s[..., :-1]], axis=-1) + m
    s2_prev = np.concatenate([zeros, s2[..., :-1]], axis=-1) + m * m
    mu = s_prev / t
    var = (_PRIOR_VAR + np.maximum(s2_prev - s_prev * mu, 0.0)) / t
    gap = m - mu
    lam = np.clip(gap / (var + gap * gap), 0.0, _MAX_BET / (1.0 - m))
    return np.cumsum(np.log1p(lam * (m - x)), axis=-1)


def _rejects(x: np.ndarray, null_mean: float, log_threshold: float) -> bool:
    return x.size > 0 and float(log_wealth(x, null_mean).max()) >= log_threshold


def guard_sequence(diffs: ArrayLike, margin: float, alpha: float) -> SequentialResult:
    """Anytime-valid test of H0: mean(diffs) >= -margin, on differences in [-1, 1] in arrival order."""
    x = np.asarray(diffs, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)) or np.any(np.abs(x) > 1.0):
        raise StatisticsError("paired differences must be finite and within [-1, 1] (correct_new - correct_old)")
    if not 0.0 <= margin < 1.0:
        raise StatisticsError(f"margin must be in [0, 1), got {margin}")
    if not 0.0 < alpha < 1.0:
        raise StatisticsError(f"alpha must be in (0, 1), got {alpha}")
    thr = math.log(1.0 / alpha)
    if x.size == 0:
        return SequentialResult(reject=False, bound=1.0, n=0, statistic=0.0, threshold=thr)
    stat = max(0.0, float(log_wealth(x, -margin).max()))
    return SequentialResult(
        reject=stat >= thr, bound=_upper_bound(x, thr), n=int(x.size), statistic=stat, threshold=thr,
        mean=float(x.mean()),
    )


def _upper_bound(x: np.ndarray, log_threshold: float, tol: float = 1e-4) -> float:
    """Smallest null mean the data rejects (bisection on (-1, 1)); 1.0 when none is rejected."""
    hi = 1.0 - 1e-9
    if not _rejects(x, hi, log_threshold):
        return 1.0
    lo = -1.0 + 1e-9
    if _rejects(x, lo, log_threshold):
        return -1.0
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if _rejects(x, mid, log_threshold):
            hi = mid
        else:
            lo = mid
    return hi


__all__ = ["SequentialResult", "guard_sequence", "log_wealth"]
