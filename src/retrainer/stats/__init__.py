"""Pure numeric drift and experiment statistics - no I/O.

One algorithm family per module; this namespace is the public API:

* :mod:`~retrainer.stats.binning` - reference-quantile bins, counts, smoothed proportions
* :mod:`~retrainer.stats.psi` - Population Stability Index
* :mod:`~retrainer.stats.numeric` - two-sample KS and Wasserstein-1 (fast paths on sorted samples)
* :mod:`~retrainer.stats.categorical` - chi-square homogeneity test, Jensen-Shannon distance
* :mod:`~retrainer.stats.multiple` - Benjamini-Hochberg FDR control
* :mod:`~retrainer.stats.proportions` - z-test, CI, SRM, sample size, always-valid mSPRT p-value
* :mod:`~retrainer.stats.drift` - reference profiles and the all-features drift entry point

Input that a statistic cannot be computed on raises :class:`retrainer.errors.StatisticsError`
from the low-level functions, and gives ``status="insufficient_data"`` from :mod:`drift`.
"""

from __future__ import annotations

from retrainer.errors import StatisticsError
from retrainer.stats.binning import (
    FiniteValues,
    bin_counts,
    counts_from_sorted,
    bin_proportions,
    finite_values,
    quantile_edges,
)
from retrainer.stats.categorical import OTHER, CategoryCounts, chi_square, count_categories, jensen_shannon
from retrainer.stats.drift import (
    DEFAULT_MIN_COUNT,
    CategoricalReference,
    DatasetDriftResult,
    DriftStatus,
    FeatureDriftResult,
    FeatureKind,
    NumericReference,
    Reference,
    dataset_drift,
    feature_drift,
)
from retrainer.stats.multiple import benjamini_hochberg
from retrainer.stats.numeric import (
    KS_EXACT_MAX_N,
    NumericComparison,
    compare_sorted,
    ks_2samp_stat,
    ks_sorted,
    wasserstein,
    wasserstein_sorted,
)
from retrainer.stats.proportions import (
    diff_confidence_interval,
    msprt_pvalue,
    required_sample_size,
    srm_test,
    two_proportion_ztest,
)
from retrainer.stats.psi import psi, psi_from_counts

__all__ = [
    # binning
    "FiniteValues",
    "bin_counts",
    "counts_from_sorted",
    "bin_proportions",
    "finite_values",
    "quantile_edges",
    # PSI
    "psi",
    "psi_from_counts",
    # KS / Wasserstein
    "KS_EXACT_MAX_N",
    "NumericComparison",
    "compare_sorted",
    "ks_2samp_stat",
    "ks_sorted",
    "wasserstein",
    "wasserstein_sorted",
    # categorical
    "OTHER",
    "CategoryCounts",
    "chi_square",
    "count_categories",
    "jensen_shannon",
    # multiple testing
    "benjamini_hochberg",
    # proportions / A/B
    "diff_confidence_interval",
    "msprt_pvalue",
    "required_sample_size",
    "srm_test",
    "two_proportion_ztest",
    # drift entry point
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
    # errors
    "StatisticsError",
]
