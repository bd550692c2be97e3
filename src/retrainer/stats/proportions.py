"""Tests on conversion-style proportions, for A/B analysis.

Arm A is the control (champion), arm B the treatment (challenger); differences are
always ``p_b - p_a``, so a positive z means B converts better.

>>> z, p = two_proportion_ztest(100, 1000, 130, 1000)
>>> round(z, 3), round(p, 4)
(2.103, 0.0355)
>>> required_sample_size(0.10, 0.02)
3841
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import special as _special  # not scipy.stats: ~0.4 s more to import (issue 20)

from retrainer.errors import StatisticsError

__all__ = [
    "diff_confidence_interval",
    "msprt_pvalue",
    "required_sample_size",
    "srm_test",
    "two_proportion_ztest",
]


def _check_counts(successes: int, n: int, arm: str) -> None:
    if n <= 0:
        raise StatisticsError(f"arm {arm} has no observations (n={n}); wait until both arms have traffic")
    if not 0 <= successes <= n:
        raise StatisticsError(f"arm {arm}: successes must be between 0 and n={n}, got {successes}")


def two_proportion_ztest(
    successes_a: int, n_a: int, successes_b: int, n_b: int, alternative: str = "two-sided", *, null_diff: float = 0.0
) -> tuple[float, float]:
    """Pooled z-test of ``p_b - p_a == null_diff``: ``(z, pvalue)``; ``alternative`` is ``two-sided``,
    ``larger`` (H1: p_b - p_a > null_diff) or ``smaller`` (H1: p_b - p_a < null_diff).

    A non-zero ``null_diff`` is a margin: ``larger`` with ``null_diff=0.02`` asks whether B is worse
    than A by *more than* two points (the rollback guard's question).
    Equal to statsmodels ``proportions_ztest([successes_b, successes_a], [n_b, n_a], value=null_diff,
    alternative=...)`` (which keeps the pooled variance for a non-zero offset too).
    Raises :class:`StatisticsError` when every outcome is the same (all or no successes
    in both arms): the variance is zero and there is nothing to test yet.
    """
    _check_counts(successes_a, n_a, "A")
    _check_counts(successes_b, n_b, "B")
    pooled = (successes_b + successes_a) / (n_b + n_a)
    var = pooled * (1.0 - pooled) * (1.0 / n_b + 1.0 / n_a)
    if var <= 0:
        raise StatisticsError(
            "both arms have only successes or only failures, so the pooled variance is 0; collect more data"
        )
    z = (successes_b / n_b - successes_a / n_a - null_diff) / math.sqrt(var)
    if alternative == "larger":
        return float(z), float(_special.ndtr(-z))
    if alternative == "smaller":
        return float(z), float(_special.ndtr(z))
    if alternative != "two-sided":
        raise StatisticsError(f"alternative must be 'two-sided', 'larger' or 'smaller', got {alternative!r}")
    return float(z), float(2.0 * _special.ndtr(-abs(z)))


def diff_confidence_interval(
    successes_a: int, n_a: int, successes_b: int, n_b: int, confidence: float = 0.95
) -> tuple[float, float]:
    """Wald (unpooled) confidence interval for ``p_b - p_a``.

    Equal to statsmodels ``confint_proportions_2indep(successes_b, n_b, successes_a, n_a,
    method="wald", compare="diff")``. Wald intervals are too narrow for tiny counts; fine at
    A/B-test sizes.
    """
    _check_counts(successes_a, n_a, "A")
    _check_counts(successes_b, n_b, "B")
    if not 0.0 < confidence < 1.0:
        raise StatisticsError(f"confidence must be in (0, 1), got {confidence!r}")
    pa, pb = successes_a / n_a, successes_b / n_b
    se = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    half = float(-_special.ndtri((1.0 - confidence) / 2.0)) * se
    diff = pb - pa
    return diff - half, diff + half


def srm_test(observed_counts: Sequence[int], expected_ratios: Sequence[float]) -> float:
    """Sample-ratio-mismatch p-value: chi-square goodness of fit of arm sizes to the planned split.

    Equal to ``scipy.stats.chisquare(observed, f_exp=ratios / sum(ratios) * sum(observed))``.
    A tiny p-value (conventionally < 0.001) means assignment or logging is broken and the
    A/B result should not be trusted.

    >>> round(srm_test([5000, 5000], [0.5, 0.5]), 3)
    1.0
    """
    obs = np.asarray(observed_counts, dtype=np.float64)
    ratios = np.asarray(expected_ratios, dtype=np.float64)
    if obs.ndim != 1 or obs.shape != ratios.shape or obs.size < 2:
        raise StatisticsError("need one observed count and one expected ratio per arm, for at least two arms")
    if np.any(obs < 0) or np.any(ratios <= 0) or not np.all(np.isfinite(ratios)):
        raise StatisticsError("observed counts must be >= 0 and expected ratios > 0")
    total = obs.sum()
    if total <= 0:
        raise StatisticsError("no units assigned yet; an SRM check needs traffic")
    expected = ratios / ratios.sum() * total
    stat = float(np.sum((obs - expected) ** 2 / expected))
    return float(_special.chdtrc(obs.size - 1, stat))


def required_sample_size(p_baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm to detect an absolute lift ``mde`` (``p_b = p_baseline + mde``), two-sided.

    Textbook closed form (e.g. Chow, Shao & Wang, *Sample Size Calculations*, 4.2)::

        n = (z_{1-alpha/2} sqrt(2 pbar qbar) + z_{power} sqrt(p1 q1 + p2 q2))^2 / mde^2
    """
    p1, p2 = p_baseline, p_baseline + mde
    if not (0.0 < p1 < 1.0 and 0.0 < p2 < 1.0) or mde == 0:
        raise StatisticsError(
            f"need 0 < p_baseline < 1, mde != 0 and 0 < p_baseline + mde < 1; got {p_baseline!r}, {mde!r}"
        )
    if not (0.0 < alpha < 1.0 and 0.0 < power < 1.0):
        raise StatisticsError("alpha and power must both be in (0, 1)")
    z_a = float(-_special.ndtri(alpha / 2.0))
    z_b = float(_special.ndtri(power))
    pbar = (p1 + p2) / 2.0
    root = z_a * math.sqrt(2.0 * pbar * (1 - pbar)) + z_b * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return int(math.ceil(root**2 / mde**2))


def msprt_pvalue(
    successes_a: ArrayLike, n_a: ArrayLike, successes_b: ArrayLike, n_b: ArrayLike, *, tau2: float = 1e-4
) -> float:
    """Always-valid p-value for ``p_b == p_a`` from a mixture SPRT (Johari et al. 2017).

    Pass cumulative counts at each look so far (scalars for a single look); the result is
    valid however often you peek and whenever you stop, unlike a repeated z-test.

    With ``theta_hat = p_b - p_a`` approximately ``N(theta, V)``, ``V`` the pooled
    variance estimate (the null's), and a ``N(0, tau2)`` mixing prior on ``theta``, the
    mixture likelihood ratio is::

        Lambda = sqrt(V / (V + tau2)) * exp(tau2 * theta_hat^2 / (2 V (V + tau2)))

    and the always-valid p-value is the running minimum of ``min(1, 1 / Lambda)``.
    ``tau2`` should be about the squared size of effects you care about (default: a
    1-point lift, 0.01^2). Looks where every outcome so far is identical carry no
    evidence (Lambda = 1).
    """
    sa, na, sb, nb = (np.atleast_1d(np.asarray(x, dtype=np.float64)) for x in (successes_a, n_a, successes_b, n_b))
    if not (sa.shape == na.shape == sb.shape == nb.shape) or sa.ndim != 1 or sa.size == 0:
        raise StatisticsError("successes and n must be equally long sequences of cumulative counts (one per look)")
    if np.any(na <= 0) or np.any(nb <= 0) or np.any((sa < 0) | (sa > na)) or np.any((sb < 0) | (sb > nb)):
        raise StatisticsError("each look needs n > 0 in both arms and 0 <= successes <= n")
    if not tau2 > 0:
        raise StatisticsError(f"tau2 (mixing variance) must be > 0, got {tau2!r}")
    return float(np.min(_msprt_look_pvalues(sa, na, sb, nb, tau2)))


def _msprt_look_pvalues(
    sa: np.ndarray, na: np.ndarray, sb: np.ndarray, nb: np.ndarray, tau2: float
) -> np.ndarray:
    """``min(1, 1/Lambda)`` per look (arrays broadcast, so simulations can pass 2-D counts)."""
    pooled = (sa + sb) / (na + nb)
    v = pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)
    theta = sb / nb - sa / na
    informative = v > 0
    v_safe = np.where(informative, v, 1.0)
    log_lr = 0.5 * np.log(v_safe / (v_safe + tau2)) + tau2 * theta**2 / (2.0 * v_safe * (v_safe + tau2))
    log_lr = np.where(informative, log_lr, 0.0)
    return np.minimum(1.0, np.exp(-log_lr))
