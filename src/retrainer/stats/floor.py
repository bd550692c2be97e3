"""Judging a metric against a floor on a small sample: the noise allowance and the sample size.

A rule "fire when the metric is below its floor T" on n labels fires by chance for a model that
is fine: at n = 140 a model at T + 0.05 (accuracy 0.90, floor 0.85) falls below 0.85 in 2.2% of
windows. Two numbers make the rule honest at any volume, with a tolerance δ (the band around the
floor in which no promise is made) and error rates α (false fire) and β (miss):

* **the cut**: fire when the observed metric is below ``cut = min(T, k / n)``, where k is the
  α-quantile of Binomial(n, T + δ) (``P(X < k) ≤ α``, exact): a model δ above its floor fires in at
  most α of the windows, and with many labels the cut is the floor itself;
* **the sample size** (``min_samples`` by default): the smallest n with
  ``z_{1-α}·σ(T+δ) + z_{1-β}·σ(T−δ) ≤ 2δ·√n`` (σ(p) = √(p(1−p)), the normal approximation of the
  same binomials): then a model δ below its floor fires in about 1 − β of the windows.

Accuracy is a proportion of the n labels: exact. Precision, recall and f1 are proportions of
fewer rows (predicted positives, actual positives, their mean for f1): the caller passes that
count, so the allowance widens when positives are rare. roc_auc uses the Hanley–McNeil standard
error, with a normal quantile.

**The p-value of the rule** (:func:`pvalue_below`, :func:`auc_pvalue_below`): the smallest α at
which the cut would fire on the observed value, for the null "the metric is at least T + δ" (the
model sits above the no-promise band), one-sided. Below the floor it is the exact binomial tail
``P(X ≤ ⌊value·n⌋)`` under Binomial(n, T + δ) (roc_auc: ``Φ((A − (T + δ)) / SE)``, SE by
Hanley–McNeil at T + δ); at or above the floor it is 1, since ``cut ≤ T`` never fires there at any
α. It is never smaller than the plain tail, so it is a valid (conservative) p-value, and
``value < cut ⇔ p < α`` for every n: where the cut is ``k/n`` (few labels) because ``P(X ≤ x) < α
⇔ x < k``; where the cut is the floor itself (many labels) because p is the tail only below the
floor, and the tail there is already below α.

>>> round(pvalue_below(0.85, 122 / 147, 147), 4)  # 122 of 147 correct: fires, P(X <= 122) at 0.90
0.0059
>>> round(pvalue_below(0.85, 123 / 147, 147), 4)  # 123 of 147: does not fire, p >= 1%
0.0113

>>> min_samples_for(0.85)  # accuracy floor 0.85, δ 0.05, α 1%, β 10%
147
>>> round(cut_below(0.85, 147), 4)  # fire below 0.8367 (123 of 147), not below 0.85
0.8367
"""

from __future__ import annotations

import math

from scipy.special import ndtri  # = scipy.stats.norm.ppf; scipy.stats costs ~0.4 s to import (issue 20)
from scipy.special import ndtr  # = scipy.stats.norm.cdf
from scipy.special._ufuncs import _binom_cdf, _binom_ppf  # binom.cdf / binom.ppf's own kernels (tests compare)

DEFAULT_TOLERANCE = 0.05
DEFAULT_ALPHA = 0.01  # false fire for a model δ above its floor, per check
DEFAULT_BETA = 0.10  # miss for a model δ below its floor, per check (the next check is another chance)


def _clip(p: float) -> float:
    return min(max(p, 1e-6), 1 - 1e-6)


def min_samples_for(floor: float, *, tolerance: float = DEFAULT_TOLERANCE, alpha: float = DEFAULT_ALPHA,
                    beta: float = DEFAULT_BETA) -> int:
    """Labels a window needs so that a model ``tolerance`` above ``floor`` fires in ≤ ``alpha`` of the
    windows and one ``tolerance`` below fires in ≈ 1 − ``beta`` of them (normal approximation)."""
    hi, lo = _clip(floor + tolerance), _clip(floor - tolerance)
    spread = ndtri(1 - alpha) * math.sqrt(hi * (1 - hi)) + ndtri(1 - beta) * math.sqrt(lo * (1 - lo))
    return max(1, math.ceil((spread / (2 * tolerance)) ** 2))


def cut_below(floor: float, n: float, *, tolerance: float = DEFAULT_TOLERANCE, alpha: float = DEFAULT_ALPHA) -> float:
    """The value below which a proportion over ``n`` rows fires: ``min(floor, k / n)`` with k the
    exact α-quantile of Binomial(n, floor + tolerance), so ``P(X / n < cut) ≤ alpha`` there.
    ``n`` is rounded down (a fractional effective count, as f1's, is judged on the smaller sample)."""
    m = int(math.floor(n))
    if m < 1:
        return -math.inf  # no rows: nothing can be below anything (the caller says insufficient_data)
    p = floor + tolerance
    if p >= 1:
        return floor
    k = int(_binom_ppf(alpha, m, p))  # smallest k with P(X <= k) >= alpha, so P(X < k) < alpha
    return min(floor, k / m)


def pvalue_below(floor: float, value: float, n: float, *, tolerance: float = DEFAULT_TOLERANCE) -> float:
    """The p-value of :func:`cut_below`'s rule for a proportion ``value`` over ``n`` rows: the exact
    tail ``P(X ≤ ⌊value·n⌋)``, X ~ Binomial(⌊n⌋, floor + tolerance), below the floor; 1 at or above
    it. ``value < cut_below(floor, n, alpha=α)`` exactly when ``pvalue_below(...) < α``."""
    m = int(math.floor(n))
    if m < 1:
        return 1.0  # no rows: no evidence (cut_below never fires either)
    if value >= floor:
        return 1.0  # the cut is min(floor, k/n): at or above the floor the rule fires at no alpha
    p = floor + tolerance
    if p >= 1:
        return 0.0  # the null says every row is right (cut_below's cut is the floor itself): one miss refutes it
    # The rows right: value * m (an integer for accuracy, precision and recall; f1's effective count
    # is judged on floor(n) rows as the cut is). floor() keeps value < k/m <=> hits < k exactly; the
    # epsilon absorbs the float error of value = hits / m.
    hits = math.floor(value * m + 1e-9)
    return float(_binom_cdf(hits, m, p))


def auc_cut_below(floor: float, n_pos: int, n_neg: int, *, tolerance: float = DEFAULT_TOLERANCE,
                  alpha: float = DEFAULT_ALPHA) -> float:
    """roc_auc's cut: ``min(floor, A − z_{1-α}·SE(A))`` at A = floor + tolerance, SE by Hanley &
    McNeil (1982)."""
    if n_pos < 1 or n_neg < 1:
        return -math.inf
    a = min(floor + tolerance, 1 - 1e-9)
    return min(floor, a - ndtri(1 - alpha) * _hanley_mcneil_se(a, n_pos, n_neg))


def auc_pvalue_below(floor: float, auc: float, n_pos: int, n_neg: int, *,
                     tolerance: float = DEFAULT_TOLERANCE) -> float:
    """The p-value of :func:`auc_cut_below`'s rule: ``Φ((auc − A) / SE(A))`` at A = floor + tolerance
    below the floor, 1 at or above it; ``auc < auc_cut_below(..., alpha=α)`` exactly when it is < α."""
    if n_pos < 1 or n_neg < 1 or auc >= floor:
        return 1.0
    a = min(floor + tolerance, 1 - 1e-9)
    return float(ndtr((auc - a) / _hanley_mcneil_se(a, n_pos, n_neg)))


def _hanley_mcneil_se(a: float, n_pos: int, n_neg: int) -> float:
    """The standard error of an AUC ``a`` on ``n_pos`` positives and ``n_neg`` negatives (Hanley &
    McNeil 1982, with their exponential approximations of Q1 and Q2)."""
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    return math.sqrt(max(var, 0.0))


__all__ = ["DEFAULT_ALPHA", "DEFAULT_BETA", "DEFAULT_TOLERANCE", "auc_cut_below", "auc_pvalue_below", "cut_below",
           "min_samples_for", "pvalue_below"]
