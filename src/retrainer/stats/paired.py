"""Paired and clustered estimates of a difference between two models (challenger - champion).

Every function returns an :class:`Estimate`: a point difference with its standard error, which
the rollout's normal-normal posterior (``deployments.rollout.decision``) takes as its likelihood.
``se = inf`` means "no usable evidence" (too few rows); the posterior then stays the prior.

* :func:`paired_difference` - both models scored the same rows (the holdout, shadow pairs):
  ``d_i = correct_chal_i - correct_champ_i``; mean of ``d``, ``se = sd(d, ddof=1) / sqrt(n)``.
  Pairing removes the between-row variance both models share: with the models disagreeing on a
  share ``q`` of rows, ``var(d) <= q`` where two independent arms would have ``~2 p (1 - p)``.
* :func:`paired_bootstrap` - the same for a metric that is not a mean of rows (f1, ROC AUC):
  resample rows (the same rows for both models) and take the standard deviation of
  ``metric(chal) - metric(champ)`` over the resamples.
* :func:`ppi_paired_difference` - prediction-powered inference for a mean (Angelopoulos et al.,
  Science 2023) with the power-tuned weight of PPI++ (Angelopoulos, Duchi, Zrnic 2023,
  arXiv:2311.01453). ``Y`` are labelled differences, ``f`` a label-free proxy of them (each
  version's calibrated probability of being right, chal - champ) on the same labelled rows,
  ``f~`` the proxy on the ``N`` unlabelled rows::

      theta = lam * mean(f~) + mean(Y - lam * f)
      var   = lam^2 var(f~) / N + var(Y - lam * f) / n
      lam*  = cov(Y, f) / ((1 + n / N) var(f))          (clipped to [0, 1])

  The estimate is unbiased for any ``lam`` and any proxy (the labelled rectifier
  ``mean(Y - lam f)`` removes the proxy's bias), so the interval stays valid when the calibration
  is off; a good proxy only makes it tighter. ``var(f)`` pools labelled and unlabelled proxies,
  as ``ppi_py`` does. With fewer than two labelled pairs nothing anchors the proxy: the
  estimate's ``mean`` is the proxy mean (for display) and ``se = inf`` (no evidence).
* :func:`clustered_difference` - an A/B test where *units* (users) are randomised and a unit
  sends many requests: difference of arm means with the cluster-robust (sandwich) variance by
  unit, i.e. the ratio estimator's delta-method variance per arm. It equals the ``arm``
  coefficient's standard error of OLS ``value ~ 1 + arm`` with ``cov_type="cluster"`` (checked
  against statsmodels, with and without its small-sample correction).

>>> e = paired_difference([1, 1, 0, 1], [1, 0, 0, 0])
>>> e.mean, e.n
(0.5, 4)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtri  # = scipy.stats.norm.ppf, without importing scipy.stats (~0.4 s; issue 20)

from retrainer.errors import StatisticsError


@dataclass(frozen=True)
class Estimate:
    """A difference (challenger - champion) with its standard error.

    ``n``: labelled rows (pairs, or A/B observations) behind it; ``n_unlabelled``: label-free
    proxy pairs that PPI used; ``lam``: the PPI weight on the proxy (None when no proxy).
    """

    mean: float
    se: float
    n: int
    n_unlabelled: int = 0
    lam: float | None = None

    @property
    def informative(self) -> bool:
        """Whether it carries evidence (a finite, positive-or-zero standard error)."""
        return math.isfinite(self.se) and math.isfinite(self.mean)

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """The normal (Wald) interval ``mean +- z se``; ``(-inf, inf)`` without evidence."""
        if not self.informative:
            return (-math.inf, math.inf)
        z = float(ndtri(0.5 + level / 2))
        return (self.mean - z * self.se, self.mean + z * self.se)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        lo, hi = self.interval()
        out["interval_95"] = [_finite_or_none(lo), _finite_or_none(hi)]
        out["se"] = _finite_or_none(self.se)
        out["mean"] = _finite_or_none(self.mean)
        return out


def _finite_or_none(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None  # JSON has no inf


def _vector(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if not np.all(np.isfinite(a)):
        raise StatisticsError(f"{name} has missing or infinite values; drop or fill those rows first")
    return a


def _mean_se(d: np.ndarray) -> tuple[float, float]:
    n = d.size
    if n == 0:
        return math.nan, math.inf
    if n < 2:
        return float(d.mean()), math.inf
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(n))


def paired_difference(challenger_correct: ArrayLike, champion_correct: ArrayLike) -> Estimate:
    """Mean of the per-row differences ``challenger - champion`` (both scored the same rows)."""
    a = _vector(challenger_correct, "challenger_correct")
    b = _vector(champion_correct, "champion_correct")
    if a.shape != b.shape:
        raise StatisticsError(f"paired rows differ in length ({a.size} vs {b.size}); pass both models' results on the same rows")
    mean, se = _mean_se(a - b)
    return Estimate(mean=mean, se=se, n=int(a.size))


def paired_bootstrap(
    y_true: ArrayLike,
    pred_challenger: ArrayLike,
    pred_champion: ArrayLike,
    metric: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int = 1000,
    seed: int = 0,
) -> Estimate:
    """``metric(y, chal) - metric(y, champ)`` on the full data, with the paired-bootstrap standard error.

    Each resample draws rows with replacement and scores *both* models on the same rows, so the
    standard error is that of the paired difference. Resamples on which the metric is undefined
    (NaN, e.g. one class only) are dropped; with fewer than two left, ``se = inf``.
    """
    y = np.asarray(y_true)
    pc = np.asarray(pred_challenger)
    pp = np.asarray(pred_champion)
    n = y.shape[0]
    if pc.shape[0] != n or pp.shape[0] != n:
        raise StatisticsError(f"y_true and both predictions must have the same rows ({n}, {pc.shape[0]}, {pp.shape[0]})")
    if n == 0:
        return Estimate(mean=math.nan, se=math.inf, n=0)
    point = float(metric(y, pc)) - float(metric(y, pp))
    rng = np.random.default_rng(seed)
    diffs = np.empty(n_boot)
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        yb = y[idx]
        diffs[b] = float(metric(yb, pc[idx])) - float(metric(yb, pp[idx]))
    diffs = diffs[np.isfinite(diffs)]
    se = float(diffs.std(ddof=1)) if diffs.size >= 2 and n >= 2 else math.inf
    return Estimate(mean=point, se=se, n=int(n))


def ppi_lambda(labelled_diff: np.ndarray, labelled_proxy: np.ndarray, unlabelled_proxy: np.ndarray) -> float:
    """PPI++'s power-tuned weight for a mean, ``cov(Y, f) / ((1 + n/N) var(f))``, clipped to [0, 1]."""
    n, big_n = labelled_diff.size, unlabelled_proxy.size
    if n < 2 or big_n == 0:
        return 0.0
    cov = float(np.cov(labelled_diff, labelled_proxy)[0, 1])
    pooled = float(np.concatenate([labelled_proxy, unlabelled_proxy]).var(ddof=1))
    return float(_tuned_lambda(n, big_n, cov, pooled))


def _tuned_lambda(n: ArrayLike, big_n: ArrayLike, cov_yf: ArrayLike, var_f_pooled: ArrayLike) -> np.ndarray:
    """As ppi_py's ``_calc_lam_glm``: the covariance over n (``cov_yf`` comes with ddof 1), the
    pooled proxy variance with ddof 1; 0 where undefined, clipped to [0, 1]."""
    n = np.asarray(n, dtype=np.float64)
    big_n = np.asarray(big_n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        tuned = np.asarray(cov_yf) * (n - 1) / n / ((1.0 + n / big_n) * np.asarray(var_f_pooled))
    return np.clip(np.where(np.isfinite(tuned), tuned, 0.0), 0.0, 1.0)


def ppi_paired_difference(
    labelled_diff: ArrayLike,
    labelled_proxy_diff: ArrayLike,
    unlabelled_proxy_diff: ArrayLike,
    lam: float | None = None,
) -> Estimate:
    """Prediction-powered estimate of the mean difference (module docstring: the formulas).

    ``labelled_diff``: ``correct_chal - correct_champ`` on the labelled pairs;
    ``labelled_proxy_diff``: ``P(chal right) - P(champ right)`` (calibrated) on the same rows;
    ``unlabelled_proxy_diff``: the same on the pairs whose labels have not arrived. ``lam``: the
    weight on the proxy (None: PPI++'s power-tuned one; 0: labelled pairs only; 1: plain PPI).
    """
    y = _vector(labelled_diff, "labelled_diff")
    f = _vector(labelled_proxy_diff, "labelled_proxy_diff")
    fu = _vector(unlabelled_proxy_diff, "unlabelled_proxy_diff")
    if y.shape != f.shape:
        raise StatisticsError(
            f"labelled_diff ({y.size}) and labelled_proxy_diff ({f.size}) must be the same rows")
    n, big_n = y.size, fu.size
    if n < 2:
        # Nothing anchors the proxy: no valid interval. Report the proxy mean for display only.
        proxy = np.concatenate([f, fu])
        return Estimate(mean=float(proxy.mean()) if proxy.size else math.nan, se=math.inf, n=n, n_unlabelled=big_n,
                        lam=None)
    if big_n == 0:
        mean, se = _mean_se(y)
        return Estimate(mean=mean, se=se, n=n, n_unlabelled=0, lam=0.0)
    if lam is not None and not 0.0 <= lam <= 1.0:
        raise StatisticsError(f"lam must be in [0, 1], got {lam}")
    theta, se, lam_used = ppi_from_moments(
        n, big_n, mean_y=y.mean(), mean_f=f.mean(), mean_fu=fu.mean(), var_y=y.var(ddof=1), var_f=f.var(ddof=1),
        var_fu=fu.var(ddof=1) if big_n > 1 else 0.0, cov_yf=np.cov(y, f)[0, 1],
        var_f_pooled=np.concatenate([f, fu]).var(ddof=1), lam=lam,
    )
    return Estimate(mean=float(theta), se=float(se), n=n, n_unlabelled=big_n, lam=float(lam_used))


def ppi_from_moments(
    n: ArrayLike, big_n: ArrayLike, *, mean_y: ArrayLike, mean_f: ArrayLike, mean_fu: ArrayLike, var_y: ArrayLike,
    var_f: ArrayLike, var_fu: ArrayLike, cov_yf: ArrayLike, var_f_pooled: ArrayLike, lam: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The PPI++ estimate ``(theta, se, lam)`` from the samples' moments (arrays broadcast).

    :func:`ppi_paired_difference` computes the moments from rows and calls this; a simulation
    that draws the moments directly (bench/rollout_decisions.py) runs the same arithmetic.
    ``var_*`` and ``cov_yf`` are sample (ddof=1) figures; ``var_f_pooled``: the proxy's variance
    over labelled and unlabelled rows together, which sets the power-tuned weight (as ``ppi_py``).
    """
    n = np.asarray(n, dtype=np.float64)
    big_n = np.asarray(big_n, dtype=np.float64)
    var_f_rect = np.asarray(var_f, dtype=np.float64)
    if lam is None:
        lam_arr = _tuned_lambda(n, big_n, cov_yf, var_f_pooled)
    else:
        lam_arr = np.full(np.broadcast(n, big_n).shape, float(lam))
    lam_arr = np.where(big_n > 0, lam_arr, 0.0)
    theta = lam_arr * np.where(big_n > 0, mean_fu, 0.0) + np.asarray(mean_y) - lam_arr * np.asarray(mean_f)
    var_rect = np.asarray(var_y) - 2 * lam_arr * np.asarray(cov_yf) + lam_arr**2 * var_f_rect
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where(big_n > 0, lam_arr**2 * np.asarray(var_fu) / big_n, 0.0) + np.maximum(var_rect, 0.0) / n
    se = np.where(n >= 2, np.sqrt(var), np.inf)
    return theta, se, lam_arr


def clustered_difference(values: ArrayLike, arm: ArrayLike, unit: ArrayLike, *, small_sample: bool = True) -> Estimate:
    """Difference of arm means (challenger - champion) with variance clustered by ``unit``.

    ``arm``: truthy (1, True, ``"challenger"``) for the challenger's rows, falsy (0, False,
    ``"champion"``) for the champion's. ``unit``: the randomised unit of each row. The variance
    is the sandwich ``sum_g psi_g^2`` with ``psi_g`` unit ``g``'s share of the difference's
    residuals, ``psi_g = sum_{i in g, chal} e_i / n_chal - sum_{i in g, champ} e_i / n_champ``
    (a unit found in both arms is handled). ``small_sample``: multiply by statsmodels' CR1
    factor ``G/(G-1) * (N-1)/(N-2)`` (G units, N rows); with it the standard error equals
    statsmodels' ``OLS(...).fit(cov_type="cluster")``.
    """
    y = _vector(values, "values")
    a = np.asarray(arm).ravel()
    if a.dtype.kind in "US":
        bad = ~np.isin(a, ["challenger", "champion"])
        if bad.any():
            raise StatisticsError(f"arm must be 'challenger' or 'champion', got {a[bad][0]!r}")
        is_chal = a == "challenger"
    else:
        is_chal = a.astype(bool)
    u = np.asarray(unit).ravel()
    if not (y.size == is_chal.size == u.size):
        raise StatisticsError(f"values, arm and unit must have one entry per row ({y.size}, {is_chal.size}, {u.size})")
    n_b, n_a = int(is_chal.sum()), int((~is_chal).sum())
    if n_a == 0 or n_b == 0:
        return Estimate(mean=math.nan, se=math.inf, n=int(y.size))
    mb, ma = float(y[is_chal].mean()), float(y[~is_chal].mean())
    e = y - np.where(is_chal, mb, ma)
    _, g = np.unique(u, return_inverse=True)
    n_units = int(g.max()) + 1
    psi = np.bincount(g, weights=np.where(is_chal, e / n_b, -e / n_a), minlength=n_units)
    var = float(np.sum(psi**2))
    if n_units < 2:
        return Estimate(mean=mb - ma, se=math.inf, n=int(y.size))
    if small_sample:
        big_n = y.size
        var *= n_units / (n_units - 1) * ((big_n - 1) / (big_n - 2) if big_n > 2 else 1.0)
    return Estimate(mean=mb - ma, se=math.sqrt(var), n=int(y.size))


__all__ = [
    "Estimate",
    "clustered_difference",
    "paired_bootstrap",
    "paired_difference",
    "ppi_from_moments",
    "ppi_lambda",
    "ppi_paired_difference",
]
