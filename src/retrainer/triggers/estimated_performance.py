"""``estimated_performance``: the champion's quality estimated from its own scores, before labels arrive.

Reads every prediction of the window (labelled or not, ``ctx.scored``), turns the logged
scores into probabilities with the calibration map fitted on the champion's holdout at
registration (``calibration`` in its reference profile), and estimates accuracy, precision,
recall, f1 and roc_auc by confidence-based performance estimation
(:func:`retrainer.stats.estimation.estimate_performance`: expected confusion matrix, analytic
CIs). Rows whose label has arrived count with their realized label: the figure is one blend,
and the evidence says how much of it is realized.

The window (``window: auto``, the default) is the newest ``min_predictions`` predictions: the
shortest trailing window holding them, at most ``max_window`` (30d) back and never before the
champion's deployment; a duration fixes it. Why 200: the CBPE standard error of accuracy is at
most √(0.25/n), 0.035 at n = 200, so a 95% interval is within ±0.07 and the default ``drop``
of 0.05 fires only once the interval's upper end is below the line.

Fires when, for a configured metric:

* ``thresholds: {f1: 0.70}``: the estimate is below the floor; or
* ``drop: {f1: 0.05}``: the estimate is more than 0.05 below the champion's holdout figure
  *and* the CI's upper bound is below that line too, so noise alone cannot fire it.

**The p-value** (``evidence["pvalue"]``, per metric and line in ``evidence["pvalues"]``; what a
fleet's false-retrain control reads): one-sided, normal, for the null "the window's realized metric
is at least this line" — the quantity the CI covers: ``Φ((estimate − line) / se)`` with the CI's own
standard error, once per configured line (a floor, a drop line); the trigger's is Bonferroni over
them, ``min(1, K · min p)``. A drop fired exactly when its p is below (1 − confidence) / 2 (2.5%
at 95%: its CI's upper end is below the line); a floor fired exactly when its p is below 0.5 (a
floor has no noise allowance: an estimate just below it fires). It is as sound as the CI: it
assumes calibrated scores and covariate shift only. No p-value while insufficient_data.

Honest limits. The estimate holds only under covariate shift (the inputs move, P(y | x) does not)
and with calibrated scores; it is blind to concept drift (the same inputs now mean other labels),
which only labels reveal: pair it with ``performance`` on matured labels. Binary classifiers with
``predict_proba`` only: a regressor or a multiclass model has no calibration map and gets
``insufficient_data`` saying so.

>>> from retrainer.testing import make_context, synthetic_log
>>> ref = {"calibration": {"version": 1, "method": "platt", "a": 1.7, "b": 0.0, "input": "logit"},
...        "holdout_metrics": {"accuracy": 0.87, "f1": 0.87}}
>>> ctx = make_context(synthetic_log(), reference=ref)
>>> trigger = EstimatedPerformanceTrigger({"window": "3d", "min_predictions": 100, "drop": {"accuracy": 0.05}})
>>> d = trigger.evaluate(ctx)
>>> d.status, d.evidence["calibration"], round(d.evidence["realized_share"], 2)
('ok', 'platt', 0.67)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator
from scipy.special import ndtr  # = scipy.stats.norm.cdf; scipy.stats costs ~0.4 s to import (issue 20)

from retrainer.durations import PositiveDuration, format_duration
from retrainer.errors import StatisticsError
from retrainer.profiles import load_calibration
from retrainer.stats.estimation import estimate_performance
from retrainer.stats.multiple import bonferroni
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import AUTO, TriggerContext
from retrainer.windows import EvidenceWindow, LabelledWindow
from retrainer.triggers.decision import Decision

Metric = Literal["accuracy", "f1", "precision", "recall", "roc_auc"]
_NO_MAP = ("the champion has no calibration map: one is fitted at registration for binary classifiers with "
           "predict_proba only (regression and multiclass are not supported; use `performance` on matured labels), "
           "and models registered before it need a retrain")


def line_pvalues(estimate: float, se: float | None, floor: float | None, drop_line: float | None) -> dict[str, float]:
    """One-sided p-values for "the realized metric is at least this line", by line (``floor``,
    ``drop``): ``Φ((estimate − line) / se)``; with no spread (every label realized) 0 below the
    line and 1 at or above it."""
    out = {}
    for name, line in (("floor", floor), ("drop", drop_line)):
        if line is None:
            continue
        if se is None or not se > 0:
            out[name] = 0.0 if estimate < line else 1.0
        else:
            out[name] = float(ndtr((estimate - line) / se))
    return out


def _unit_interval(v: dict[str, float], what: str) -> dict[str, float]:
    bad = [m for m, x in v.items() if not 0.0 <= x <= 1.0]
    if bad:
        raise ValueError(f"{what} must be within [0, 1]: {', '.join(bad)}")
    return v


class EstimatedPerformanceTrigger(Trigger):
    """Fires when the label-free estimate of a metric falls below its floor or drops from the holdout."""

    name = "estimated_performance"

    class Params(Trigger.Params):
        window: Literal["auto"] | PositiveDuration = Field(
            AUTO, description="auto: the newest min_predictions predictions (up to max_window back, not before the "
            "champion's deployment); a duration: the predictions made within it, labelled or not.")
        max_window: PositiveDuration = Field(timedelta(days=30), description="window auto reads back at most this far.")
        thresholds: dict[Metric, float] = Field(
            default_factory=dict, description="Absolute floor per metric; an estimate below it fires."
        )
        drop: dict[Metric, float] = Field(
            default_factory=lambda: {"f1": 0.05},
            description="Allowed fall below the champion's holdout figure; fires when the estimate and its CI's "
            "upper bound are both further below.",
        )
        min_predictions: int = Field(200, ge=1, description="Fewer scored predictions than this: insufficient_data "
                                     "(at 200 the CBPE standard error of accuracy is at most 0.035).")
        confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Level of the confidence intervals.")
        positive_label: float = Field(1.0, description="The positive class, as logged (the model's classes_[1]).")
        champion_only: bool = Field(True, description="Estimate only the champion's own predictions.")

        @field_validator("thresholds")
        @classmethod
        def _floors(cls, v: dict[str, float]) -> dict[str, float]:
            return _unit_interval(v, "thresholds")

        @field_validator("drop")
        @classmethod
        def _drops(cls, v: dict[str, float]) -> dict[str, float]:
            return _unit_interval(v, "drop")

        @model_validator(mode="after")
        def _some(self) -> EstimatedPerformanceTrigger.Params:
            if not self.thresholds and not self.drop:
                raise ValueError("give at least one metric in thresholds or drop")
            return self

    def _drop_lines(self, holdout: Any) -> tuple[dict[str, float], list[str]]:
        """``holdout - drop`` per drop metric, and the drop metrics the profile has no holdout figure for."""
        lines, missing = {}, []
        for m, fall in self.params.drop.items():
            base = holdout.get(m) if hasattr(holdout, "get") else None
            if base is None or not np.isfinite(float(base)):
                missing.append(m)
            else:
                lines[m] = float(base) - fall
        return lines, missing

    def _window(self, ctx: TriggerContext, version: str | None) -> tuple[LabelledWindow | None, EvidenceWindow]:
        """Every prediction estimated from: the newest ``min_predictions`` (window auto) or a fixed window."""
        p = self.params
        if p.window == AUTO:
            return ctx.scored_auto(p.min_predictions, p.max_window, model_version=version)
        w = ctx.scored(p.window, model_version=version)
        return w, EvidenceWindow(ctx.now - p.window, ctx.now, 0 if w is None else len(w), p.min_predictions, "fixed")

    def evaluate(self, ctx: TriggerContext) -> Decision:
        p = self.params
        ref = ctx.reference or {}
        evidence: dict[str, Any] = {"window": p.window if p.window == AUTO else format_duration(p.window)}
        try:
            cal = load_calibration(ref)
        except StatisticsError as exc:
            return Decision.insufficient(self.label, reason=f"The champion's calibration map is unusable: {exc}",
                                         evidence=evidence)
        if cal is None:
            skipped = (ref.get("calibration") or {}).get("skipped") if hasattr(ref.get("calibration"), "get") else None
            why = f"calibration was skipped at registration ({skipped})" if skipped else _NO_MAP
            return Decision.insufficient(self.label, reason=f"Cannot estimate performance: {why}.", evidence=evidence)
        evidence["calibration"] = cal.method
        holdout = ref.get("holdout_metrics") or {}
        drop_lines, missing = self._drop_lines(holdout)
        floors = dict(p.thresholds)
        # The line a metric must stay above: its floor or its drop line, whichever is higher.
        lines = {m: max(floors.get(m, -np.inf), drop_lines.get(m, -np.inf)) for m in {*floors, *drop_lines}}
        evidence |= {"holdout_metrics": {m: holdout.get(m) for m in p.drop}, "thresholds": floors,
                     "drop_lines": drop_lines, "no_holdout_figure": missing}
        if not lines:
            return Decision.insufficient(
                self.label, reason=f"No line to judge against: the champion's profile has no holdout figure for "
                f"{', '.join(missing)} (drop needs it; or set thresholds).", evidence=evidence)

        version = ctx.champion.version if p.champion_only and ctx.champion is not None else None
        w, span = self._window(ctx, version)
        evidence["evidence_window"] = span.to_dict()
        if w is None:
            return Decision.insufficient(self.label, reason="The window source cannot serve unlabelled predictions "
                                         "(no scored_window): nothing to estimate from.", evidence=evidence)
        score, y_pred, y_true = (np.asarray(a, dtype=float) for a in (w.score, w.y_pred, w.y_true))
        scored = np.isfinite(score) & np.isfinite(y_pred)
        n = int(scored.sum())
        evidence |= {"n": n, "n_predictions": w.n_predictions, "n_unscored": len(w) - n}
        classes = np.unique(np.concatenate([y_pred[scored], y_true[scored & np.isfinite(y_true)]]))
        if classes.size > 2:  # a regressor's answers, or a third class
            return Decision.insufficient(
                self.label, reason=f"estimated_performance is for binary classifiers: the window holds "
                f"{classes.size} distinct predictions/labels (regression or multiclass).", evidence=evidence)
        if n < p.min_predictions:
            return Decision.insufficient(
                self.label, reason=f"Not enough predictions to estimate performance: {span.describe()}"
                + (f", of which {n} scored." if n != span.n else "."), evidence=evidence)
        y, s = y_true[scored], score[scored]
        labels = np.where(np.isfinite(y), (y == p.positive_label).astype(float), np.nan)
        est = estimate_performance(cal.apply(s), y_pred[scored] == p.positive_label, labels=labels, score=s,
                                   confidence=p.confidence)
        evidence |= {"estimate": {m: est.metrics[m] for m in lines},
                     "ci": {m: None if est.ci[m] is None else list(est.ci[m]) for m in lines},
                     "realized_share": est.realized_share, "confidence": p.confidence, "ci_method": est.method}
        judged = {m: est.metrics[m] for m in lines if est.metrics[m] is not None}
        if not judged:
            return Decision.insufficient(self.label, reason=f"None of {', '.join(lines)} can be estimated here "
                                         "(the scores expect a single class).", evidence=evidence)

        def below(m: str) -> bool:
            value, hi = judged[m], est.ci[m][1]  # type: ignore[index]
            under_floor = m in floors and value < floors[m]
            # A drop fires only when the whole CI is below the line too: noise alone cannot fire it.
            dropped = m in drop_lines and value < drop_lines[m] and hi < drop_lines[m]
            return under_floor or dropped

        failing = [m for m in judged if below(m)]
        worst = min(judged, key=lambda m: judged[m] - lines[m])
        pvalues = {m: line_pvalues(judged[m], est.se[m], floors.get(m), drop_lines.get(m)) for m in judged}
        evidence |= {"failing": failing, "worst": worst, "pvalues": pvalues,
                     "pvalue": bonferroni([q for per in pvalues.values() for q in per.values()])}
        blend = f"{n} predictions, {est.realized_share:.0%} of labels realized"

        def part(m: str) -> str:
            lo, hi = est.ci[m]  # type: ignore[misc]
            return f"{m} {judged[m]:.3f} [{lo:.3f}, {hi:.3f}] vs line {lines[m]:.3f}"

        if failing:
            return Decision.fire(self.label, reason=f"Estimated on {blend}: {'; '.join(part(m) for m in failing)}.",
                                 value=judged[worst], threshold=lines[worst], evidence=evidence)
        return Decision.ok(self.label, reason=f"Estimated on {blend}: {'; '.join(part(m) for m in judged)}; "
                           "none below its floor, none dropped with its CI below the line.",
                           value=judged[worst], threshold=lines[worst], evidence=evidence)


__all__ = ["EstimatedPerformanceTrigger", "line_pvalues"]
