"""Label-free performance estimation (CBPE): a binary classifier's quality from its own calibrated scores.

Confidence-based performance estimation (NannyML's CBPE): if ``p_i`` is the calibrated probability
that row ``i`` is positive, its label is a Bernoulli(``p_i``) draw, so the window's confusion
matrix has a known expectation at the model's decision::

    E[TP] = sum of p_i over predicted positives      E[FP] = sum of (1 - p_i) over predicted positives
    E[FN] = sum of p_i over predicted negatives      E[TN] = sum of (1 - p_i) over predicted negatives

and accuracy, precision, recall and f1 follow from it (sklearn's definitions, a zero denominator
gives 0). ROC AUC is the expected Mann-Whitney statistic: ``E[U] / E[P x N]`` with
``U = sum over pairs i != j of y_i (1 - y_j) [s_i > s_j]`` (ties 1/2), ranked by the model's raw
score ``s``; for independent labels both expectations are exact pair sums, computed in
O(n log n) by sorting.

Blending: a row whose label has arrived uses it (``q_i = y_i``, no variance) instead of ``p_i``
(``q_i = p_i``); the figure is one estimate of the whole window with ``realized_share`` of it
known for sure. With every label in, each metric equals sklearn's on those labels and the CI
closes to a point.

Confidence intervals are *analytic*: the unlabelled labels are independent Bernoulli draws, so
TP and FN are independent Poisson-binomial sums (variance ``sum p(1 - p)``), and each metric's
standard error is the delta method on them (for ROC AUC, on the linearisation of U and P x N in
every label). We chose this over a parametric bootstrap because it is exact in the variance of
the counts, deterministic, and costs a few vector passes: one estimate over 1M rows stays far
under a second, where B = 200 bootstrap draws of 1M Bernoullis would not. The interval is
``estimate +- z * se`` clipped to [0, 1]: it covers the window's *realized* metric (what the
labels will say) with the nominal probability when the scores are calibrated and n is not tiny.

Honest limits: the estimate is right only if the calibration map still holds on the window, i.e.
under covariate shift (the features' distribution moves, P(y | x) does not). It is blind to
concept drift (P(y | x) changes): the model's scores cannot know their own labels changed
meaning. Matured labels (the ``performance`` trigger) are what see that.

>>> import numpy as np
>>> p = np.array([0.9, 0.8, 0.3, 0.1])
>>> est = estimate_performance(p, predicted=p >= 0.5)
>>> round(est.confusion.tp, 3), round(est.metrics["accuracy"], 3), est.realized_share
(1.7, 0.825, 0.0)
>>> est = estimate_performance(p, predicted=p >= 0.5, labels=np.array([1.0, 0.0, 0.0, 0.0]))
>>> round(est.metrics["accuracy"], 3), est.ci["accuracy"], est.realized_share
(0.75, (0.75, 0.75), 1.0)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtri  # = scipy.stats.norm.ppf, without importing scipy.stats (~0.4 s; issue 20)

from retrainer.errors import StatisticsError

EstimatedMetric = Literal["accuracy", "precision", "recall", "f1", "roc_auc"]
ESTIMATED_METRICS: tuple[EstimatedMetric, ...] = ("accuracy", "precision", "recall", "f1", "roc_auc")
CI_METHOD = "analytic (Poisson-binomial counts, delta method)"


@dataclass(frozen=True)
class ExpectedConfusion:
    """The expected confusion matrix of a window (floats: expectations, not counts)."""

    tp: float
    fp: float
    fn: float
    tn: float


@dataclass(frozen=True)
class PerformanceEstimate:
    """Estimated (blended) metrics of one window, with their confidence intervals.

    ``metrics[m]`` is None where the metric is undefined (roc_auc with no expected pair of
    classes); ``ci[m]`` is ``(low, high)`` at ``confidence``; ``se[m]`` its standard error.
    ``realized_share`` is the share of rows whose label is known (0 = pure estimate, 1 = realized).
    """

    metrics: Mapping[str, float | None]
    ci: Mapping[str, tuple[float, float] | None]
    se: Mapping[str, float | None]
    confusion: ExpectedConfusion
    n: int
    n_realized: int
    confidence: float
    method: str = field(default=CI_METHOD)

    @property
    def realized_share(self) -> float:
        return self.n_realized / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready figures (for trigger evidence and reports)."""
        return {
            "metrics": dict(self.metrics),
            "ci": {m: None if c is None else [c[0], c[1]] for m, c in self.ci.items()},
            "se": dict(self.se),
            "confusion": {"tp": self.confusion.tp, "fp": self.confusion.fp,
                          "fn": self.confusion.fn, "tn": self.confusion.tn},
            "n": self.n,
            "n_realized": self.n_realized,
            "realized_share": self.realized_share,
            "confidence": self.confidence,
            "method": self.method,
        }


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


def _as_1d(values: ArrayLike, name: str, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if n is not None and arr.size != n:
        raise StatisticsError(f"{name} has {arr.size} rows, the probabilities {n}: pass arrays aligned row by row")
    return arr


def expected_confusion(q: np.ndarray, predicted: np.ndarray) -> ExpectedConfusion:
    """E[confusion matrix] for outcome probabilities ``q`` (realized labels as 0/1) and decisions."""
    n_pos = int(np.count_nonzero(predicted))
    tp = float(np.sum(q, where=predicted))  # masked sums: no copies of a 1M-row window
    fn = float(q.sum()) - tp
    return ExpectedConfusion(tp=tp, fp=n_pos - tp, fn=fn, tn=(q.size - n_pos) - fn)


def _expected_auc(q: np.ndarray, var: np.ndarray, score: np.ndarray) -> tuple[float | None, float | None]:
    """E[U] / E[P x N] and the delta-method standard error of the realized AUC."""
    n = q.size
    sp = float(q.sum())
    sn = n - sp
    pairs = sp * sn - float(var.sum())  # E[P x N] = sum over i != j of q_i (1 - q_j); var = q (1 - q)
    if pairs <= 0:
        return None, None
    order = np.argsort(score)  # tie order is irrelevant: ties are handled as groups below
    s, qs, vs = score[order], q[order], var[order]
    # Tie groups of equal scores; everything below is per group, rows only enter through sums.
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    sizes = np.diff(np.r_[starts, n])
    g_pos = np.add.reduceat(qs, starts)
    g_neg = sizes - g_pos
    neg_below = np.cumsum(g_neg) - g_neg
    pos_above = sp - np.cumsum(g_pos)
    # Row k of group g wins against every negative below g and half of the others tied with it:
    # win_k = neg_below_g + (g_neg_g - (1 - q_k)) / 2, so sum_k q_k win_k sums per group.
    u = float(np.sum(g_pos * (neg_below + 0.5 * g_neg)) - 0.5 * var.sum())
    auc = u / pairs
    if not np.any(var):
        return auc, 0.0
    # d AUC / d y_k = (win_k - lose_k - AUC (N - P)) / E[P x N], lose_k the positives above k
    # (ties halved); it is c_g + q_k - 1/2 with c_g constant in the group, so
    # sum_k grad_k^2 var_k = sum_g c_g^2 V_g + 2 c_g W_g + sum_k (q_k - 1/2)^2 var_k.
    c = neg_below - pos_above + 0.5 * (g_neg - g_pos) - auc * (sn - sp)
    centred = qs - 0.5
    v_g = np.add.reduceat(vs, starts)
    w_g = np.add.reduceat(vs * centred, starts)
    total = float(np.sum(c * c * v_g + 2.0 * c * w_g) + np.sum(centred * centred * vs))
    return auc, float(np.sqrt(max(total, 0.0))) / pairs


def estimate_performance(
    proba: ArrayLike,
    predicted: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    score: ArrayLike | None = None,
    confidence: float = 0.95,
) -> PerformanceEstimate:
    """CBPE estimate of accuracy, precision, recall, f1 and roc_auc over one window.

    ``proba``: calibrated P(positive) per row. ``predicted``: the model's decision per row (truthy
    = predicted positive). ``labels``: realized labels where they have arrived (1 positive,
    0 negative, NaN not yet); those rows use the label instead of ``proba``. ``score``: what ROC
    AUC ranks by (the model's raw score; default ``proba``). Rows with a non-finite probability
    and no label cannot be judged: a StatisticsError says how many.
    """
    if not 0.0 < confidence < 1.0:
        raise StatisticsError(f"confidence must be within (0, 1), got {confidence}")
    p = _as_1d(proba, "proba")
    n = p.size
    if n == 0:
        raise StatisticsError("no predictions to estimate performance on: wait for the window to fill")
    decided = np.asarray(predicted).ravel()
    if decided.size != n:
        raise StatisticsError(f"predicted has {decided.size} rows, the probabilities {n}: pass arrays aligned row by row")
    decided = decided.astype(bool)
    known = np.zeros(n, dtype=bool)
    q = p.copy()
    if labels is not None:
        y = _as_1d(labels, "labels", n)
        known = np.isfinite(y)
        if np.any((y[known] != 0.0) & (y[known] != 1.0)):
            raise StatisticsError("labels must be 1 (positive), 0 (negative) or NaN (not arrived yet)")
        q[known] = y[known]
    bad = ~known & ~((p >= 0.0) & (p <= 1.0))
    if np.any(bad):
        raise StatisticsError(
            f"{int(bad.sum())} of {n} unlabelled rows have no probability within [0, 1]: "
            "calibrate the scores first (fit_calibration / CalibrationMap.apply)"
        )
    rank_by = q if score is None else _as_1d(score, "score", n)
    if score is not None and not np.all(np.isfinite(rank_by)):
        raise StatisticsError("score holds NaN or infinite values: ROC AUC cannot rank them")

    var = q * (1.0 - q)  # Bernoulli variance of each label: 0 where it is known (q is 0 or 1)
    cm = expected_confusion(q, decided)
    v_tp = float(np.sum(var, where=decided))
    v_fn = float(var.sum()) - v_tp
    tp, fn = cm.tp, cm.fn
    n_pp = cm.tp + cm.fp
    f1_den = n_pp + tp + fn  # 2TP + FP + FN
    metrics: dict[str, float | None] = {
        "accuracy": (cm.tp + cm.tn) / n,
        "precision": _ratio(tp, n_pp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, f1_den),
    }
    # Delta method: each metric as a function of the independent sums TP and FN (FP = n_pp - TP,
    # TN = n_pn - FN are then fixed), Var = g_TP^2 Var(TP) + g_FN^2 Var(FN).
    grads = {
        "accuracy": (1.0 / n, -1.0 / n),
        "precision": (_ratio(1.0, n_pp), 0.0),
        "recall": (_ratio(fn, (tp + fn) ** 2), -_ratio(tp, (tp + fn) ** 2)),
        "f1": (_ratio(2 * (n_pp + fn), f1_den**2), -_ratio(2 * tp, f1_den**2)),
    }
    se: dict[str, float | None] = {m: float(np.sqrt(g[0] ** 2 * v_tp + g[1] ** 2 * v_fn)) for m, g in grads.items()}
    metrics["roc_auc"], se["roc_auc"] = _expected_auc(q, var, rank_by)

    z = float(ndtri(0.5 + confidence / 2))
    ci: dict[str, tuple[float, float] | None] = {}
    for m in ESTIMATED_METRICS:
        value, err = metrics[m], se[m]
        ci[m] = None if value is None or err is None else (max(0.0, value - z * err), min(1.0, value + z * err))
    return PerformanceEstimate(
        metrics=metrics, ci=ci, se=se, confusion=cm, n=n, n_realized=int(known.sum()), confidence=confidence
    )


__all__ = ["CI_METHOD", "ESTIMATED_METRICS", "ExpectedConfusion", "PerformanceEstimate", "estimate_performance",
           "expected_confusion"]
