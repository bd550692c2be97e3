"""Per-feature and whole-dataset drift statistics against stored reference profiles.

A reference profile is built once from the training data and kept as JSON by the store:

* :class:`NumericReference` - quantile bin edges and per-bin counts over the *whole*
  reference (for PSI), plus a sorted sample (for KS and Wasserstein);
* :class:`CategoricalReference` - category counts.

Checking a current batch then costs one sort per numeric column: PSI counts come from
binary searches of the bin edges in the sorted column, and KS and Wasserstein from one
linear merge with the sorted reference (:func:`retrainer.stats.numeric.compare_sorted`).
Columns are spread over a thread pool; numpy's sort and merge release the GIL.

Nothing here decides whether drift is "bad" - thresholds belong to the triggers. What
cannot be computed (missing column, empty or all-NaN batch, too few values) comes back
with ``status="insufficient_data"`` and a reason, never as a number that looks like drift.

>>> ref = NumericReference.from_values([0.1 * i for i in range(100)], bins=4)
>>> res = feature_drift(ref, [0.1 * i for i in range(100)])
>>> res.status, res.psi, res.ks, res.wasserstein
('ok', 0.0, 0.0, 0.0)
>>> feature_drift(ref, [float("nan")] * 50).status
'insufficient_data'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from retrainer.errors import StatisticsError
from retrainer.stats.binning import counts_from_sorted, finite_values, quantile_edges
from retrainer.stats.categorical import chi_square, count_categories, jensen_shannon
from retrainer.stats.multiple import benjamini_hochberg
from retrainer.stats.numeric import _compare
from retrainer.stats.psi import psi_from_counts

__all__ = [
    "DEFAULT_MIN_COUNT",
    "CategoricalReference",
    "DatasetDriftResult",
    "DriftStatus",
    "FeatureDriftResult",
    "FeatureKind",
    "NumericReference",
    "Reference",
    "dataset_drift",
    "feature_drift",
    "with_adjusted_pvalues",
]

#: Below this many usable current (or reference) values a feature is ``insufficient_data``:
#: PSI of a handful of points swings wildly and would read as drift.
DEFAULT_MIN_COUNT = 30

DriftStatus = Literal["ok", "insufficient_data"]
FeatureKind = Literal["numeric", "categorical"]

_PROFILE_VERSION = 1


def _readonly(arr: NDArray[Any]) -> NDArray[Any]:
    arr.setflags(write=False)
    return arr


def _expect(data: Mapping[str, Any], kind: str) -> None:
    if data.get("kind") != kind or data.get("version") != _PROFILE_VERSION:
        raise StatisticsError(
            f"not a version-{_PROFILE_VERSION} {kind} reference profile "
            f"(kind={data.get('kind')!r}, version={data.get('version')!r}); rebuild it with from_values()"
        )


@dataclass(frozen=True, eq=False)
class NumericReference:
    """Reference profile of a numeric feature (arrays are read-only)."""

    kind: ClassVar[str] = "numeric"

    edges: NDArray[np.float64]
    """Bin edges, ``-inf`` ... ``+inf`` (see :func:`~retrainer.stats.binning.quantile_edges`)."""
    counts: NDArray[np.int64]
    """Reference values per bin, over the whole reference."""
    sorted_sample: NDArray[np.float64]
    """Sorted finite reference values (all of them, or a random sample)."""
    n: int
    """Finite values in the whole reference."""
    n_nan: int
    """NaN/inf values dropped from the reference."""

    @classmethod
    def from_values(
        cls, values: ArrayLike, bins: int = 10, sample_size: int | None = None, seed: int = 0
    ) -> NumericReference:
        """Profile ``values``; keep a seeded random sample of ``sample_size`` for KS/Wasserstein.

        Sampling keeps JSON profiles small (1M floats is ~20 MB of JSON); KS p-values then
        reflect the sample size, PSI still uses the full reference.
        """
        finite, n_nan = finite_values(values)
        if finite.size == 0:
            raise StatisticsError("cannot build a numeric reference: no finite values (empty or all NaN)")
        if sample_size is not None and sample_size < 1:
            raise StatisticsError(f"sample_size must be >= 1 or None, got {sample_size}")
        # One sort serves the quantiles (selection on sorted data is linear), the bin
        # counts (binary searches) and, unless sampled, the KS/Wasserstein sample.
        ordered = np.sort(finite)
        edges = quantile_edges(ordered, bins)
        sample = ordered
        if sample_size is not None and sample_size < finite.size:
            rng = np.random.default_rng(seed)
            sample = np.sort(finite[rng.choice(finite.size, size=sample_size, replace=False)])
        return cls(
            edges=_readonly(edges),
            counts=_readonly(counts_from_sorted(ordered, edges)),
            sorted_sample=_readonly(sample),
            n=int(finite.size),
            n_nan=n_nan,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (inner edges only: strict JSON has no infinities)."""
        return {
            "kind": self.kind,
            "version": _PROFILE_VERSION,
            "inner_edges": self.edges[1:-1].tolist(),
            "counts": self.counts.tolist(),
            "sorted_sample": self.sorted_sample.tolist(),
            "n": self.n,
            "n_nan": self.n_nan,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericReference:
        """Inverse of :meth:`to_dict`; validates shape and order."""
        _expect(data, cls.kind)
        try:
            edges = np.concatenate([[-np.inf], np.asarray(data["inner_edges"], dtype=np.float64), [np.inf]])
            counts = np.asarray(data["counts"], dtype=np.int64)
            sample = np.asarray(data["sorted_sample"], dtype=np.float64)
            n, n_nan = int(data["n"]), int(data["n_nan"])
        except (KeyError, TypeError, ValueError) as exc:
            raise StatisticsError(f"numeric reference profile is malformed: {exc!r}; rebuild it") from exc
        if (
            counts.shape != (edges.size - 1,)
            or np.any(np.diff(edges) <= 0)
            or sample.size == 0
            or not np.all(np.isfinite(sample))
            or np.any(np.diff(sample) < 0)
            or int(counts.sum()) != n
        ):
            raise StatisticsError("numeric reference profile is inconsistent (edges/counts/sample); rebuild it")
        return cls(_readonly(edges), _readonly(counts), _readonly(sample), n, n_nan)


@dataclass(frozen=True)
class CategoricalReference:
    """Reference profile of a categorical feature: category -> count (keys are ``str``)."""

    kind: ClassVar[str] = "categorical"

    counts: Mapping[str, int]
    n_missing: int = 0

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @classmethod
    def from_values(cls, values: ArrayLike) -> CategoricalReference:
        counts, n_missing = count_categories(values)  # type: ignore[arg-type]
        if not counts:
            raise StatisticsError("cannot build a categorical reference: no non-missing values")
        return cls(counts, n_missing)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "version": _PROFILE_VERSION, "counts": dict(self.counts), "n_missing": self.n_missing}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalReference:
        _expect(data, cls.kind)
        try:
            counts = {str(k): int(v) for k, v in dict(data["counts"]).items()}
            n_missing = int(data.get("n_missing", 0))
        except (KeyError, TypeError, ValueError) as exc:
            raise StatisticsError(f"categorical reference profile is malformed: {exc!r}; rebuild it") from exc
        if not counts or any(v < 0 for v in counts.values()) or sum(counts.values()) == 0:
            raise StatisticsError("categorical reference profile has no positive counts; rebuild it")
        return cls(counts, n_missing)


Reference = NumericReference | CategoricalReference


@dataclass(frozen=True)
class FeatureDriftResult:
    """Drift statistics of one feature. Statistics are ``None`` unless ``status == "ok"``.

    ``pvalue`` is the feature's test (KS for numeric, chi-square for categorical);
    ``pvalue_adjusted`` is Benjamini-Hochberg across the features of one
    :func:`dataset_drift` call. ``psi`` is computed for both kinds (categories as bins).
    """

    feature: str
    kind: FeatureKind
    status: DriftStatus
    reason: str
    n_ref: int
    n_cur: int
    n_nan: int
    psi: float | None = None
    ks: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    chi2: float | None = None
    chi2_pvalue: float | None = None
    jensen_shannon: float | None = None
    pvalue: float | None = None
    pvalue_adjusted: float | None = None
    # From counts on frozen bins (retrainer.stats.histogram): the true KS lies in
    # [ks, ks + ks_bound], the true Wasserstein-1 in wasserstein +/- wasserstein_bound.
    ks_bound: float | None = None
    wasserstein_bound: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able evidence for a Decision."""
        return asdict(self)


@dataclass(frozen=True)
class DatasetDriftResult:
    """Results per feature, in the order of the references given."""

    features: Mapping[str, FeatureDriftResult]

    @property
    def computed(self) -> list[FeatureDriftResult]:
        return [r for r in self.features.values() if r.status == "ok"]

    @property
    def insufficient(self) -> list[str]:
        return [name for name, r in self.features.items() if r.status != "ok"]

    def to_dict(self) -> dict[str, Any]:
        return {name: r.to_dict() for name, r in self.features.items()}


def _insufficient(feature: str, kind: FeatureKind, reason: str, n_ref: int, n_cur: int = 0, n_nan: int = 0) -> FeatureDriftResult:
    return FeatureDriftResult(feature, kind, "insufficient_data", reason, n_ref, n_cur, n_nan)


def _numeric_drift(
    ref: NumericReference, current: ArrayLike, feature: str, min_count: int, eps: float
) -> FeatureDriftResult:
    try:
        cur, n_nan = finite_values(current)
    except StatisticsError as exc:
        return _insufficient(feature, "numeric", str(exc), ref.n)
    if ref.n < min_count or ref.sorted_sample.size < 1:
        return _insufficient(
            feature, "numeric", f"reference has {ref.n} finite values, fewer than min_count={min_count}", ref.n, cur.size, n_nan
        )
    if cur.size < min_count:
        return _insufficient(
            feature,
            "numeric",
            f"current batch has {cur.size} finite values ({n_nan} NaN/inf dropped), fewer than min_count={min_count}; "
            "wait for more data",
            ref.n,
            cur.size,
            n_nan,
        )
    cur_sorted = np.sort(cur)
    psi_value = psi_from_counts(ref.counts, counts_from_sorted(cur_sorted, ref.edges), eps)
    cmp = _compare(ref.sorted_sample, cur_sorted)
    return FeatureDriftResult(
        feature,
        "numeric",
        "ok",
        "",
        ref.n,
        int(cur.size),
        n_nan,
        psi=psi_value,
        ks=cmp.ks,
        ks_pvalue=cmp.ks_pvalue,
        wasserstein=cmp.wasserstein,
        pvalue=cmp.ks_pvalue,
    )


def _categorical_drift(
    ref: CategoricalReference, current: ArrayLike, feature: str, min_count: int, eps: float
) -> FeatureDriftResult:
    counts, n_missing = count_categories(current)  # type: ignore[arg-type]
    n_cur = sum(counts.values())
    if ref.n < min_count or n_cur < min_count:
        side, have = ("reference", ref.n) if ref.n < min_count else ("current batch", n_cur)
        return _insufficient(
            feature, "categorical", f"{side} has {have} non-missing values, fewer than min_count={min_count}",
            ref.n, n_cur, n_missing,
        )
    keys = sorted(set(ref.counts) | set(counts))
    psi_value = psi_from_counts([ref.counts.get(k, 0) for k in keys], [counts.get(k, 0) for k in keys], eps)
    stat, p = chi_square(ref.counts, counts)
    return FeatureDriftResult(
        feature,
        "categorical",
        "ok",
        "",
        ref.n,
        n_cur,
        n_missing,
        psi=psi_value,
        chi2=stat,
        chi2_pvalue=p,
        jensen_shannon=jensen_shannon(ref.counts, counts),
        pvalue=p,
    )


def feature_drift(
    reference: Reference,
    current: ArrayLike,
    *,
    feature: str = "",
    min_count: int = DEFAULT_MIN_COUNT,
    eps: float = 1e-4,
) -> FeatureDriftResult:
    """Drift statistics of one current column against its reference profile.

    Numeric: PSI, KS (+ p-value, see :mod:`retrainer.stats.numeric`), Wasserstein-1. Categorical: PSI over categories,
    chi-square (+ p-value), Jensen-Shannon distance. Never raises for bad *data*; a bad
    reference object is a programming error and raises :class:`StatisticsError`.
    """
    if isinstance(reference, NumericReference):
        return _numeric_drift(reference, current, feature, min_count, eps)
    if isinstance(reference, CategoricalReference):
        return _categorical_drift(reference, current, feature, min_count, eps)
    raise StatisticsError(
        f"reference for {feature or 'feature'} must be a NumericReference or CategoricalReference, "
        f"got {type(reference).__name__}"
    )


def _column(current: Mapping[str, ArrayLike] | pd.DataFrame, name: str, numeric: bool) -> ArrayLike | None:
    if isinstance(current, pd.DataFrame):
        if name not in current.columns:
            return None
        col = current[name]
        if numeric and pd.api.types.is_numeric_dtype(col.dtype):
            # Nullable dtypes (Int64, Float64) hold pd.NA; map it to NaN without a copy when possible.
            return col.to_numpy(dtype=np.float64, na_value=np.nan)
        return col
    return current.get(name)


def dataset_drift(
    references: Mapping[str, Reference],
    current: Mapping[str, ArrayLike] | pd.DataFrame,
    *,
    min_count: int = DEFAULT_MIN_COUNT,
    eps: float = 1e-4,
    max_workers: int | None = None,
) -> DatasetDriftResult:
    """:func:`feature_drift` for every referenced feature, in parallel, plus BH-adjusted p-values.

    A feature missing from ``current`` is ``insufficient_data``; extra current columns
    are ignored (they have no reference to compare with).
    """
    names = list(references)

    def one(name: str) -> FeatureDriftResult:
        ref = references[name]
        col = _column(current, name, isinstance(ref, NumericReference))
        if col is None:
            kind: FeatureKind = "numeric" if isinstance(ref, NumericReference) else "categorical"
            return _insufficient(name, kind, f"column {name!r} is missing from the current data", ref.n)
        return feature_drift(ref, col, feature=name, min_count=min_count, eps=eps)

    workers = max_workers or min(len(names), os.cpu_count() or 1) or 1
    if workers == 1 or len(names) <= 1:
        results = [one(n) for n in names]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="retrainer-drift") as pool:
            results = list(pool.map(one, names))

    return with_adjusted_pvalues(results)


def with_adjusted_pvalues(results: list[FeatureDriftResult]) -> DatasetDriftResult:
    """The features' results with Benjamini-Hochberg adjusted p-values across them."""
    results = list(results)
    computed = [i for i, r in enumerate(results) if r.pvalue is not None]
    if computed:
        _, adjusted = benjamini_hochberg([results[i].pvalue for i in computed])
        for i, p_adj in zip(computed, adjusted, strict=True):
            results[i] = replace(results[i], pvalue_adjusted=float(p_adj))
    return DatasetDriftResult({r.feature: r for r in results})
