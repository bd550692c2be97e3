"""Categorical drift: chi-square test of homogeneity and Jensen-Shannon distance.

Inputs are category -> count mappings (what a reference profile stores). Categories
seen only in the *current* sample are pooled into one ``OTHER`` bucket before the
chi-square test: a new category is real evidence of drift, but a long tail of one-off
new values (ids, free text) should count as one signal with one degree of freedom,
not hundreds. Jensen-Shannon needs no such care: it is finite with empty categories.

>>> chi_square({"a": 50, "b": 50}, {"a": 50, "b": 50})
(0.0, 1.0)
>>> jensen_shannon({"a": 1}, {"b": 1})
1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import special as _special  # not scipy.stats: ~0.4 s more to import (issue 20)

from retrainer.errors import StatisticsError

__all__ = ["OTHER", "CategoryCounts", "chi_square", "count_categories", "jensen_shannon"]

#: Bucket that pools categories absent from the reference.
OTHER = "__other__"


class CategoryCounts(NamedTuple):
    """Counts per category (keys are ``str(value)``) and the number of missing values."""

    counts: dict[str, int]
    n_missing: int


def count_categories(values: Iterable[Any]) -> CategoryCounts:
    """Count categories of a column; ``None``/NaN are missing, not a category.

    >>> count_categories(["a", "b", "a", None])
    CategoryCounts(counts={'a': 2, 'b': 1}, n_missing=1)
    """
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    n_missing = int(series.isna().sum())
    vc = series.dropna().astype(str).value_counts(sort=False)
    counts = {str(k): int(v) for k, v in sorted(vc.items())}
    return CategoryCounts(counts, n_missing)


def _validated(counts: Mapping[str, int], side: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, value in counts.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise StatisticsError(f"{side} count for category {key!r} must be a non-negative integer, got {value!r}")
        out[str(key)] = int(value)
    if sum(out.values()) == 0:
        raise StatisticsError(f"the {side} sample has no values (all counts are zero); nothing to compare")
    return out


def _contingency(ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]) -> np.ndarray:
    ref = _validated(ref_counts, "reference")
    cur = _validated(cur_counts, "current")
    known = sorted(k for k, v in ref.items() if v > 0)
    other_cur = sum(v for k, v in cur.items() if ref.get(k, 0) == 0)
    ref_row = [ref[k] for k in known]
    cur_row = [cur.get(k, 0) for k in known]
    if other_cur:
        ref_row.append(0)
        cur_row.append(other_cur)
    table = np.array([ref_row, cur_row], dtype=np.float64)
    return table[:, table.sum(axis=0) > 0]


def chi_square(ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]) -> tuple[float, float]:
    """Chi-square test of homogeneity ``(statistic, pvalue)`` of two category distributions.

    The 2 x k table (reference row, current row; new categories pooled into ``OTHER``)
    is tested exactly as ``scipy.stats.chi2_contingency(table, correction=False)``: no
    Yates correction, which would make the result depend on whether k happens to be 2.
    Both samples are treated as samples (unlike a goodness-of-fit test against the
    reference proportions, which would ignore the reference's own sampling noise).
    A single shared category gives ``(0.0, 1.0)``: identical distributions.
    """
    table = _contingency(ref_counts, cur_counts)
    if table.shape[1] < 2:
        return 0.0, 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    stat = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return stat, float(_special.chdtrc(dof, stat))  # chi2.sf's own kernel


def jensen_shannon(ref_counts: Mapping[str, int], cur_counts: Mapping[str, int]) -> float:
    """Jensen-Shannon *distance* (square root of the divergence), base 2, so in ``[0, 1]``.

    Equal to ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` on the union of
    categories.
    """
    ref = _validated(ref_counts, "reference")
    cur = _validated(cur_counts, "current")
    keys = sorted(set(ref) | set(cur))
    p = np.array([ref.get(k, 0) for k in keys], dtype=np.float64)
    q = np.array([cur.get(k, 0) for k in keys], dtype=np.float64)
    p /= p.sum()
    q /= q.sum()
    mid = (p + q) / 2.0

    def _kl(a: np.ndarray) -> float:
        nz = a > 0  # 0 * log(0 / x) == 0 by convention
        return float(np.sum(a[nz] * np.log2(a[nz] / mid[nz])))

    divergence = max((_kl(p) + _kl(q)) / 2.0, 0.0)  # clip -1e-17 rounding before sqrt
    return float(np.sqrt(divergence))
