"""STUB (i19-advance): replaced by i19-decision's module at merge. Same API, textbook formulas."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    mean: float
    se: float
    n: int
    n_unlabelled: int = 0
    lam: float | None = None


def paired_difference(chal_correct, champ_correct) -> Estimate:
    d = np.asarray(chal_correct, float) - np.asarray(champ_correct, float)
    n = d.size
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    return Estimate(float(d.mean()), se, n)


def ppi_paired_difference(labelled_diff, labelled_proxy_diff, unlabelled_proxy_diff, lam=None) -> Estimate:
    y = np.asarray(labelled_diff, float)
    f = np.asarray(labelled_proxy_diff, float)
    fu = np.asarray(unlabelled_proxy_diff, float)
    n, N = y.size, fu.size
    if N == 0:
        return paired_difference(y, np.zeros_like(y))
    if lam is None:
        vf = f.var(ddof=1) if n > 1 else 0.0
        lam = float(np.clip(np.cov(y, f)[0, 1] / ((1 + n / N) * vf), 0, 1)) if vf > 0 else 0.0
    rect = y - lam * f
    mean = lam * fu.mean() + rect.mean()
    var = lam**2 * (fu.var(ddof=1) if N > 1 else 0.0) / N + (rect.var(ddof=1) if n > 1 else math.inf) / n
    return Estimate(float(mean), float(math.sqrt(var)), n, N, lam)


def clustered_difference(values, arm, unit) -> Estimate:
    y = np.asarray(values, float)
    a = np.asarray(arm).astype(bool)
    u = np.asarray(unit)
    means, variances = [], []
    for side in (True, False):
        ys, us = y[a == side], u[a == side]
        m = ys.mean()
        _, inv = np.unique(us, return_inverse=True)
        s = np.bincount(inv, weights=ys - m)
        g = s.size
        variances.append(float((s**2).sum() / ys.size**2 * g / max(g - 1, 1)))
        means.append(float(m))
    return Estimate(means[0] - means[1], math.sqrt(sum(variances)), int(y.size))
