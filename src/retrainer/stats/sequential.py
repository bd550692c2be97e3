"""STUB (i19-advance): replaced by i19-decision's module at merge."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SequentialResult:
    reject: bool
    bound: float | None
    n: int
    statistic: float | None


def guard_sequence(diffs, margin: float, alpha: float) -> SequentialResult:
    d = np.asarray(diffs, float)
    n = d.size
    if n == 0:
        return SequentialResult(False, None, 0, None)
    rho = 1.0 / 100
    radius = math.sqrt(2 * (n * rho + 1) / (n**2 * rho) * math.log(math.sqrt(n * rho + 1) / alpha))
    upper = float(d.mean() + radius)
    return SequentialResult(upper < -margin, upper, n, float(d.mean()))
