"""``drift``: the inputs (and optionally the predictions) no longer look like the training data.

Compares the features of the last ``window`` of predictions (``ctx.features``) with the
champion's reference profile (``ctx.reference``, built by
:func:`retrainer.profiles.build_reference_profile`), one feature at a time, with
:func:`retrainer.stats.dataset_drift`. What makes a feature *drifted* is ``statistic``:

* ``psi`` (default): PSI over the reference's quantile bins (categories as bins; empty bins
  smoothed by ``eps``) above ``psi_threshold`` (0.25);
* ``pvalue``: KS (numeric) or chi-square (categorical; unseen categories pooled) p-value,
  Benjamini-Hochberg adjusted across the features, below ``alpha``;
* ``distance``: Wasserstein-1 in reference standard deviations above ``wasserstein_threshold``
  (numeric), Jensen-Shannon distance above ``js_threshold`` (categorical).

``thresholds`` overrides the threshold of the chosen statistic per feature. The dataset
verdict is ``max`` (fire when any feature drifted; ``value`` is the most drifted feature's
statistic) or ``share`` (fire when at least ``drift_share`` of the features drifted).

The window (``window: auto``, the default) is the newest ``min_samples`` predictions: the shortest
trailing window holding them, at most ``max_window`` (30d) back and never before the champion's
deployment; a duration fixes it instead. Fewer than ``min_samples`` rows is ``insufficient_data``,
naming the window and its count. Why 200: with the reference's 10 quantile bins, the PSI of a
sample of n drawn from the reference itself is about χ²₉ / n, whose 99th percentile at n = 200 is
0.11, under half the 0.25 threshold (and the KS critical distance at α = 0.05 is 1.36/√200 ≈ 0.10). The evidence lists the
``top`` most drifted features with every statistic. A window larger than ``max_rows`` (200,000)
is compared through a fixed-seed random subset of that size: the KS test's power is bounded by
the reference sample (12,000 values) anyway, and sorting 1M rows per feature is most of the cost.

Where the window's values come from is ``read``: ``auto`` (default) sums the counts the store
kept at ingest on the champion's frozen bins (:mod:`retrainer.stats.histogram`) when they cover
the window, else reads the raw values; ``histograms`` insists on counts; ``raw`` always reads
values. From counts the window is the whole hours inside it (the evidence says which), PSI,
chi-square and Jensen-Shannon are exact and KS and Wasserstein come with their bounds
(``ks_bound``, ``wasserstein_bound``); the check then costs the same at 1k or 1M rows.

With ``prediction: true`` the model's scores are compared too, as the pseudo-feature
``__prediction__``, against the profile's ``prediction`` reference. The context exposes scores
only through ``ctx.labelled``, so this looks at the window's *labelled* predictions (and
reads raw values).

>>> from datetime import timedelta
>>> from retrainer.config import FeatureSpec
>>> from retrainer.profiles import build_reference_profile
>>> from retrainer.testing import DEFAULT_NOW, make_context, synthetic_log
>>> specs = [FeatureSpec(name="x1"), FeatureSpec(name="x2"), FeatureSpec(name="segment", type="categorical")]
>>> profile = build_reference_profile(synthetic_log(DEFAULT_NOW - timedelta(days=30), seed=2), specs)
>>> ctx = make_context(synthetic_log(drifted=True), reference=profile)
>>> d = DriftTrigger({"window": "3d"}).evaluate(ctx)
>>> d.status, [f["feature"] for f in d.evidence["top"][:2]]
('fired', ['x1', 'segment'])
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import numpy as np
from pydantic import Field

from retrainer.durations import PositiveDuration, format_duration
from retrainer.errors import TriggerError
from retrainer.profiles import load_reference_profile
from retrainer.stats import FeatureDriftResult, NumericReference, Reference, dataset_drift
from retrainer.stats.drift import DatasetDriftResult, with_adjusted_pvalues
from retrainer.stats.histogram import NumericBins, histograms_drift
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import AUTO, TriggerContext
from retrainer.windows import EvidenceWindow, FeatureWindow
from retrainer.triggers.decision import Decision

PREDICTION = "__prediction__"
_LABELS = {"psi": "PSI", "pvalue": "adjusted p-value", "distance": "distance"}


class DriftTrigger(Trigger):
    """Fires when features drift from the champion's reference profile."""

    name = "drift"

    class Params(Trigger.Params):
        window: Literal["auto"] | PositiveDuration = Field(
            AUTO, description="auto: the newest min_samples predictions (up to max_window back, not before the "
            "champion's deployment); a duration: the predictions made within it.")
        max_window: PositiveDuration = Field(timedelta(days=30), description="window auto reads back at most this far.")
        features: list[str] | None = Field(None, description="Features to check (default: all in the reference).")
        statistic: Literal["psi", "pvalue", "distance"] = Field("psi", description="What makes a feature drifted.")
        psi_threshold: float = Field(0.25, gt=0, description="statistic psi: PSI above this is drift.")
        alpha: float = Field(0.05, gt=0, lt=1, description="statistic pvalue: BH-adjusted p below this is drift.")
        wasserstein_threshold: float = Field(
            0.1, gt=0, description="statistic distance: Wasserstein-1 / reference std above this (numeric)."
        )
        js_threshold: float = Field(0.1, gt=0, le=1, description="statistic distance: Jensen-Shannon above this (categorical).")
        thresholds: dict[str, float] = Field(default_factory=dict, description="Per-feature threshold of the statistic.")
        verdict: Literal["max", "share"] = Field("max", description="max: any feature drifted; share: enough of them.")
        drift_share: float = Field(0.5, gt=0, le=1, description="verdict share: fire when this share drifted.")
        min_samples: int = Field(200, ge=2, description="Fewer rows (or usable values) than this: insufficient_data. "
                                 "At 200 the 99th percentile of PSI between two samples of one distribution (10 bins) is 0.11.")
        prediction: bool = Field(False, description="Also compare prediction scores with the profile's.")
        eps: float = Field(1e-4, gt=0, lt=0.1, description="PSI smoothing of empty bins.")
        top: int = Field(5, ge=1, description="How many drifted features the evidence lists.")
        read: Literal["auto", "histograms", "raw"] = Field(
            "auto", description="auto: ingest-time histograms when they cover the window, else raw values; "
            "histograms: counts only; raw: always read the values.",
        )
        max_rows: int | None = Field(
            200_000, ge=1000, description="Compare a fixed-seed random subset of at most this many window rows "
            "(None: all). KS power is capped by the reference sample anyway; PSI noise at 200k is ~1e-4.",
        )

    # -- per-feature verdicts ----------------------------------------------------------------

    def _threshold(self, r: FeatureDriftResult) -> float:
        p = self.params
        if r.feature in p.thresholds:
            return p.thresholds[r.feature]
        if p.statistic == "psi":
            return p.psi_threshold
        if p.statistic == "pvalue":
            return p.alpha
        return p.wasserstein_threshold if r.kind == "numeric" else p.js_threshold

    def _statistic(self, r: FeatureDriftResult, std: float) -> float:
        stat = self.params.statistic
        if stat == "psi":
            return float(r.psi)  # type: ignore[arg-type]
        if stat == "pvalue":
            return float(r.pvalue_adjusted)  # type: ignore[arg-type]
        if r.kind == "categorical":
            return float(r.jensen_shannon)  # type: ignore[arg-type]
        return float(r.wasserstein) / std if std > 0 else float(r.wasserstein)  # type: ignore[arg-type]

    def _row(self, r: FeatureDriftResult, std: float) -> dict[str, Any]:
        """One feature's verdict; ``std``: the reference's standard deviation (the distance scale)."""
        value, threshold = self._statistic(r, std), self._threshold(r)
        drifted = value < threshold if self.params.statistic == "pvalue" else value > threshold
        # Severity orders features: how far past (or short of) their own threshold they are.
        severity = (threshold / max(value, 1e-300)) if self.params.statistic == "pvalue" else value / threshold
        stats = {k: getattr(r, k) for k in ("psi", "ks", "ks_pvalue", "wasserstein", "chi2", "chi2_pvalue",
                                              "jensen_shannon", "pvalue_adjusted", "ks_bound", "wasserstein_bound")}
        return {"feature": r.feature, "kind": r.kind, "value": value, "threshold": threshold, "drifted": drifted,
                "severity": min(severity, 1e300), "n_current": r.n_cur, **{k: v for k, v in stats.items() if v is not None}}

    # -- evaluate ------------------------------------------------------------------------------

    def _window(self, ctx: TriggerContext, columns: list[str]) -> tuple[FeatureWindow, EvidenceWindow]:
        """The predictions compared: the newest ``min_samples`` (window auto) or a fixed window."""
        p = self.params
        if p.window == AUTO:
            return ctx.features_auto(p.min_samples, p.max_window, columns)
        window = ctx.features(p.window, columns)
        return window, EvidenceWindow(ctx.now - p.window, ctx.now, len(window), p.min_samples, "fixed")

    def _counted(self, ctx: TriggerContext) -> tuple[Any, EvidenceWindow]:
        """The counts kept at ingest over the window judged (auto: the shortest run of whole hours
        holding ``min_samples``), or None when they do not cover it."""
        p = self.params
        if p.window == AUTO:
            return ctx.histograms_auto(p.min_samples, p.max_window, p.features)
        counted = ctx.histograms(p.window, p.features)
        n = 0 if counted is None else counted.n_rows
        return counted, EvidenceWindow(ctx.now - p.window, ctx.now, n, p.min_samples, "fixed")

    def evaluate(self, ctx: TriggerContext) -> Decision:
        p = self.params
        label = self.label
        if ctx.reference is None:
            version = ctx.champion.version if ctx.champion else None
            return Decision.insufficient(
                label, reason=f"No reference profile for the champion ({'version ' + version if version else 'none in production'}): "
                "nothing to compare with.", evidence={"champion": version},
            )
        if p.read != "raw" and not p.prediction:
            counted, counted_span = self._counted(ctx)
            if counted is None and p.read == "histograms":
                return Decision.insufficient(
                    label, reason=f"No ingest-time histograms cover {counted_span.describe()} for the "
                    "champion (not re-binned yet, or a window shorter than an hour): nothing counted to compare.",
                    evidence={"read": "histograms", "evidence_window": counted_span.to_dict()},
                )
            if counted is not None:
                return self._from_histograms(counted, counted_span)
        profile = load_reference_profile(ctx.reference)
        refs: dict[str, Reference] = dict(profile.features)
        if p.features is not None:
            missing = [f for f in p.features if f not in refs]
            if missing:
                raise TriggerError(f"{label}: features {', '.join(missing)} are not in the reference profile "
                                   f"(it has {', '.join(refs)})")
            refs = {f: refs[f] for f in p.features}
        unknown = [f for f in p.thresholds if f not in refs and f != PREDICTION]
        if unknown:
            raise TriggerError(f"{label}: thresholds name features not checked: {', '.join(unknown)}")

        window, span = self._window(ctx, list(refs))
        current: dict[str, Any] = dict(window.columns)
        n_used = len(window)
        if p.max_rows is not None and len(window) > p.max_rows:
            # Same rows for every feature and every evaluation of this window: deterministic.
            keep = np.sort(np.random.default_rng(0).choice(len(window), p.max_rows, replace=False))
            current = {c: np.asarray(v)[keep] for c, v in current.items()}
            n_used = p.max_rows
        evidence: dict[str, Any] = {"statistic": p.statistic, "verdict": p.verdict, "window": format_duration(span.span),
                                    "evidence_window": span.to_dict(), "read": "raw",
                                    "n_current": len(window), "n_compared": n_used, "n_reference": profile.n_rows}
        if len(window) < p.min_samples:
            return Decision.insufficient(
                label, reason=f"Not enough predictions to measure drift: {span.describe()}.", evidence=evidence,
            )
        if p.prediction:
            if profile.prediction is None:
                evidence["prediction"] = "the reference profile has no prediction scores"
            else:
                refs[PREDICTION] = profile.prediction
                current[PREDICTION] = np.asarray(ctx.labelled(span.span, lag=ctx.now - span.end).score, float)

        result = dataset_drift(refs, current, min_count=p.min_samples, eps=p.eps)
        scales = {name: float(np.std(ref.sorted_sample)) if isinstance(ref, NumericReference) else 1.0
                  for name, ref in refs.items()}
        return self._verdict(result, scales, evidence, span)

    def _from_histograms(self, counted: Any, span: EvidenceWindow) -> Decision:
        """The same verdict from the counts kept at ingest (``ctx.histograms``)."""
        p, label = self.params, self.label
        bins = dict(counted.bins)
        if p.features is not None:
            missing = [f for f in p.features if f not in bins]
            if missing:
                raise TriggerError(f"{label}: features {', '.join(missing)} are not in the reference profile "
                                   f"(it has {', '.join(bins)})")
        unknown = [f for f in p.thresholds if f not in bins and f != PREDICTION]
        if unknown:
            raise TriggerError(f"{label}: thresholds name features not checked: {', '.join(unknown)}")
        n = counted.n_rows
        used = [datetime.fromtimestamp(t, tz=timezone.utc).isoformat() for t in (counted.start, counted.end)]
        evidence: dict[str, Any] = {"statistic": p.statistic, "verdict": p.verdict, "window": format_duration(span.span),
                                    "evidence_window": span.to_dict(), "read": "histograms", "window_used": used,
                                    "n_current": n, "n_compared": n,
                                    "n_reference": max((b.n_ref for b in bins.values()), default=0)}
        if n < p.min_samples:
            return Decision.insufficient(
                label, reason=f"Not enough predictions to measure drift (counted at ingest, whole hours): "
                f"{span.describe()}.", evidence=evidence,
            )
        result = with_adjusted_pvalues(histograms_drift(bins, counted.histograms, min_count=p.min_samples, eps=p.eps))
        scales = {name: b.ref_std if isinstance(b, NumericBins) else 1.0 for name, b in bins.items()}
        return self._verdict(result, scales, evidence, span)

    def _verdict(self, result: DatasetDriftResult, scales: dict[str, float], evidence: dict[str, Any],
                 span: EvidenceWindow) -> Decision:
        p, label, stat_name = self.params, self.label, _LABELS[self.params.statistic]
        rows = [self._row(r, scales[r.feature]) for r in result.computed]
        evidence["insufficient"] = {name: result.features[name].reason for name in result.insufficient}
        if not rows:
            return Decision.insufficient(
                label, reason=f"No feature had {p.min_samples} usable values in {span.describe()}.",
                evidence=evidence,
            )
        rows.sort(key=lambda row: -row["severity"])
        drifted = [row["feature"] for row in rows if row["drifted"]]
        share = len(drifted) / len(rows)
        adjusted = [r.pvalue_adjusted for r in result.computed if r.pvalue_adjusted is not None]
        # The smallest BH-adjusted p-value is the Simes p-value of "no feature drifted": what a
        # fleet's false-retrain control combines across models (triggers/fleet.py).
        evidence["pvalue"] = min(adjusted) if adjusted else None
        evidence |= {"drifted": drifted, "n_drifted": len(drifted), "n_features": len(rows), "share": share,
                     "top": [{k: v for k, v in row.items() if k != "severity"} for row in rows[: p.top]]}
        worst = rows[0]
        cmp = "<" if p.statistic == "pvalue" else ">"
        lead = f"{stat_name} of {worst['feature']} is {worst['value']:.3g}"
        listed = ", ".join(drifted[:5]) + (", ..." if len(drifted) > 5 else "")
        if p.verdict == "share":
            value, threshold = share, p.drift_share
            fired = share >= p.drift_share
            reason = (f"{len(drifted)} of {len(rows)} features drifted ({share:.0%}, "
                      f"{'at least' if fired else 'below'} {p.drift_share:.0%})"
                      + (f": {listed}." if drifted else "."))
        else:
            value, threshold = worst["value"], worst["threshold"]
            fired = bool(drifted)
            reason = (f"{lead} ({cmp} {worst['threshold']:.3g}); {len(drifted)} of {len(rows)} features drifted: {listed}."
                      if fired else f"No feature drifted; the most drifted is {worst['feature']} with {stat_name} "
                      f"{worst['value']:.3g} (threshold {worst['threshold']:.3g}).")
        make = Decision.fire if fired else Decision.ok
        return make(label, reason=reason, value=value, threshold=threshold, evidence=evidence)


__all__ = ["PREDICTION", "DriftTrigger"]
