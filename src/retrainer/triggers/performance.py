"""``performance``: the model's quality on recently labelled predictions fell below a floor.

Reads the predictions of the last ``window`` whose label had arrived by ``now``
(``ctx.labelled``) and computes accuracy / f1 / precision / recall (binary, of
``positive_label``) and roc_auc (from the scores), with scikit-learn's definitions
(a zero denominator gives 0, as sklearn's ``zero_division`` default does; tested against
sklearn). Fires when any configured metric is below its threshold by more than noise allows.

**How many labels, and which window** (``window: auto``, the default): each metric is judged on
the newest ``min_labels`` labelled predictions, read back from the end of the judged window as far
as needed (the shortest trailing window holding them), never beyond ``max_window`` (90d) nor before
the champion's deployment. ``min_labels: auto`` (the default) is the sample size that makes a
model ``tolerance`` (0.05) above its floor fire in ≤ 1% of checks and one ``tolerance`` below
fire in ≈ 90% (:func:`retrainer.stats.floor.min_samples_for`: 147 labels for accuracy 0.85,
262 for f1 0.70); a metric whose window holds fewer is not judged yet (``insufficient_data`` when
none is). **The noise allowance**: a metric fires when below ``min(T, k/n)``, k the exact 1%
quantile of Binomial(n, T + tolerance) (:func:`retrainer.stats.floor.cut_below`), so a fine model
does not fire on a small unlucky window, and with many labels the cut is the floor itself.
A fixed ``window: 7d`` judges all labels of that window instead. The effective window, its count
and each metric's cut are in the evidence and the reason; so is the label coverage.

**The p-value** (``evidence["pvalue"]``, per metric in ``evidence["pvalues"]``; what a fleet's
false-retrain control reads): each metric's is the p-value of its own cut, one-sided, null "this
metric is at least its floor + ``tolerance``" (:func:`retrainer.stats.floor.pvalue_below`: the
exact binomial tail on the rows the cut counts; Hanley–McNeil for roc_auc; 1 at or above the
floor), so a metric is below its cut exactly when its p is below α (1%). The trigger's is
Bonferroni over the judged metrics, ``min(1, K · min p)``: it fired exactly when that is below
K · 1%. No p-value while insufficient_data.

Labels come late (a default is known weeks after the loan), so the window ending now is
mostly unlabelled. ``maturity`` moves the judged window back: ``auto`` (the default) judges the
``window`` that ends the p95 label delay ago (``ctx.label_delay``: labels that arrived in the
last 30 days), so nearly all its labels are in; a duration ends it that long ago; ``none`` ends
it now. Labels still count only once arrived by ``now``. The evidence and reason state the
delay used and the coverage; when a window is too young for its labels, the reason says so
and names the last complete window.

>>> from retrainer.testing import make_context, synthetic_log
>>> ctx = make_context(synthetic_log(drifted=True))
>>> d = PerformanceTrigger({"min_labels": 50}).evaluate(ctx)
>>> d.status, d.evidence["worst"]
('fired', 'accuracy')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from retrainer.durations import PositiveDuration, format_duration
from retrainer.metrics import classification_metrics
from retrainer.stats.floor import (DEFAULT_ALPHA, DEFAULT_TOLERANCE, auc_cut_below, auc_pvalue_below, cut_below,
                                   min_samples_for, pvalue_below)
from retrainer.stats.multiple import bonferroni
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import AUTO, TriggerContext
from retrainer.triggers.decision import Decision
from retrainer.windows import EvidenceWindow, LabelDelay, LabelledWindow

Metric = Literal["accuracy", "f1", "precision", "recall", "roc_auc"]


@dataclass(frozen=True, eq=False)
class RecentLabels:
    """The labelled predictions a quality judgement reads (rows with a finite label and answer)."""

    version: str | None  # whose predictions: the champion's, or None for all
    y_true: np.ndarray
    y_pred: np.ndarray
    score: np.ndarray
    n_predictions: int
    coverage: float

    def __len__(self) -> int:
        return int(self.y_true.size)


def recent_labels(
    ctx: TriggerContext, window: timedelta, *, champion_only: bool = True, lag: timedelta = timedelta(0)
) -> RecentLabels:
    """Predictions of the last ``window`` (ending ``lag`` before now) labelled by ``ctx.now`` (the
    champion's own with ``champion_only`` and a champion), as ``performance`` and ``cost_benefit`` judge them."""
    version = champion_version(ctx, champion_only)
    return _known(version, ctx.labelled(window, model_version=version, lag=lag))


def champion_version(ctx: TriggerContext, champion_only: bool) -> str | None:
    return ctx.champion.version if champion_only and ctx.champion is not None else None


def _known(version: str | None, w: LabelledWindow) -> RecentLabels:
    y_true, y_pred = np.asarray(w.y_true, float), np.asarray(w.y_pred, float)
    known = np.isfinite(y_true) & np.isfinite(y_pred)
    return RecentLabels(version, y_true[known], y_pred[known], np.asarray(w.score, float)[known],
                        w.n_predictions, w.coverage)


def judged_labels(ctx: TriggerContext, window: timedelta | str, *, min_samples: int, max_window: timedelta,
                  champion_only: bool = True, lag: timedelta = timedelta(0)) -> tuple[RecentLabels, EvidenceWindow]:
    """The labelled predictions a quality judgement reads and the window they came from: with
    ``window: auto`` the shortest trailing window (ending ``lag`` before now) holding ``min_samples``
    (:meth:`TriggerContext.labelled_auto`), else the fixed ``window``."""
    version = champion_version(ctx, champion_only)
    if window == AUTO:
        w, span = ctx.labelled_auto(min_samples, max_window, model_version=version, lag=lag)
        return _known(version, w), span
    assert isinstance(window, timedelta)
    got = recent_labels(ctx, window, champion_only=champion_only, lag=lag)
    end = ctx.now - lag
    return got, EvidenceWindow(end - window, end, len(got), min_samples, "fixed", "labelled predictions")


def metric_cut(metric: str, floor: float, y_true: np.ndarray, y_pred: np.ndarray, positive: float,
               tolerance: float) -> float:
    """Below this ``metric`` fires (:mod:`retrainer.stats.floor`): the floor less the noise
    allowance of the rows the metric is a proportion of."""
    if metric == "roc_auc":
        return auc_cut_below(floor, *_classes(y_true, positive), tolerance=tolerance)
    return cut_below(floor, _rows_of(metric, y_true, y_pred, positive), tolerance=tolerance)


def metric_pvalue(metric: str, floor: float, value: float, y_true: np.ndarray, y_pred: np.ndarray, positive: float,
                  tolerance: float) -> float:
    """The p-value of ``metric``'s own cut (:func:`retrainer.stats.floor.pvalue_below`): one-sided,
    null "the metric is at least floor + tolerance", on the same rows the cut counts; it is below
    the cut's α exactly when the metric is below its cut."""
    if metric == "roc_auc":
        return auc_pvalue_below(floor, value, *_classes(y_true, positive), tolerance=tolerance)
    return pvalue_below(floor, value, _rows_of(metric, y_true, y_pred, positive), tolerance=tolerance)


def _classes(y_true: np.ndarray, positive: float) -> tuple[int, int]:
    pos = y_true == positive
    return int(pos.sum()), int((~pos).sum())


def _rows_of(metric: str, y_true: np.ndarray, y_pred: np.ndarray, positive: float) -> float:
    """How many rows ``metric`` is a proportion of: all (accuracy), predicted positives (precision),
    actual positives (recall), their mean (f1 = TP / that mean)."""
    pos, hit = y_true == positive, y_pred == positive
    return {"accuracy": float(y_true.size), "precision": float(hit.sum()), "recall": float(pos.sum()),
            "f1": (pos.sum() + hit.sum()) / 2}[metric]


def maturity_lag(maturity: str | timedelta, delay: LabelDelay | None) -> timedelta:
    """How long before ``now`` the judged window ends: the p95 label delay for ``auto`` (zero
    while no delay is measured, or a negative one), the duration itself, or zero for ``none``."""
    if isinstance(maturity, timedelta):
        return maturity
    if maturity == "auto" and delay is not None and delay.p95 is not None:
        # Labels dated before their predictions (a store written before label times were clamped)
        # measure a negative delay: their labels are in already, so the window ends now.
        return max(delay.p95, timedelta(0))
    return timedelta(0)


def approx_duration(value: timedelta) -> str:
    """A measured duration for people: ``14d``, ``3.5d``, ``6h``, ``20m`` (one decimal at most)."""
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{round(seconds / size, 1):g}{unit}"
    return f"{seconds:.0f}s"


def _day(when: datetime) -> str:
    return when.strftime("%Y-%m-%d") if when.time() == time(0) else when.strftime("%Y-%m-%d %H:%M UTC")


def _ending(window: timedelta, lag: timedelta, now: datetime) -> str:
    return f"a {format_duration(window)} window ending " + ("now" if lag <= timedelta(0) else _day(now - lag))


def _judged(window: timedelta, lag: timedelta, delay: LabelDelay | None, end: datetime, coverage: float) -> str:
    """Which window was judged, as a reason's phrase: "of the 7d window ending 2026-03-02 (...)"."""
    span = format_duration(window)
    where = f"in the last {span}" if lag <= timedelta(0) else f"of the {span} window ending {_day(end)}"
    why = f"labels arrive after {approx_duration(delay.p95)} (p95), " if delay is not None and delay.p95 else ""
    return f"{where} ({why}{coverage:.0%} coverage)"


def _too_few(n: int, need: int, span: EvidenceWindow, lag: timedelta, delay: LabelDelay | None, now: datetime,
             coverage: float, maturity: str | timedelta) -> str:
    """Why there are not enough labels: the delay (and the last window that has them), or volume."""
    where = _ending(span.span, lag, now) if span.limit == "fixed" else span.describe()
    if delay is not None and delay.p95 is not None and lag < delay.p95:
        hint = "" if maturity == "auto" else "; maturity: auto judges that one"
        return (f"Labels arrive after {approx_duration(delay.p95)} (p95); {where} has "
                f"{coverage:.0%} coverage ({n} labelled, {need} needed); the last complete window ended "
                f"{_day(now - delay.p95)}{hint}.")
    if delay is None and maturity == "auto":
        why = "; the label delay is unknown (no label arrived in the last 30d, or the source does not measure it)"
    elif lag > timedelta(0):
        why = f"; labels arrive after {approx_duration(lag)}" + (" (p95)" if maturity == "auto" else " (maturity)")
    else:
        why = ""
    if span.limit == "fixed":
        return (f"Only {n} labelled predictions in {where} (coverage {coverage:.0%}{why}), {need} needed "
                "to judge performance.")
    return f"Not enough labels to judge performance: {where}, coverage {coverage:.0%}{why}."


class PerformanceTrigger(Trigger):
    """Fires when a metric over recently labelled predictions is below its threshold."""

    name = "performance"

    class Params(Trigger.Params):
        window: Literal["auto"] | PositiveDuration = Field(
            AUTO, description="auto: the newest min_labels labelled predictions (the shortest window holding them, "
            "up to max_window, not before the champion's deployment); a duration: all labelled predictions made within it.")
        max_window: PositiveDuration = Field(timedelta(days=90), description="window auto reads back at most this far.")
        thresholds: dict[Metric, float] = Field(
            default_factory=lambda: {"accuracy": 0.85, "f1": 0.70},
            description="Floor per metric (accuracy, f1, precision, recall, roc_auc); below it fires.",
        )
        min_labels: Literal["auto"] | int = Field(
            AUTO, description="Labels each metric is judged on; auto: enough that a model `tolerance` above its floor "
            "fires in <= 1% of checks and one `tolerance` below in ~90% (147 for accuracy 0.85). Fewer: not judged.")
        tolerance: float = Field(DEFAULT_TOLERANCE, gt=0, lt=0.5, description="The band around each floor in which "
                                 "no promise is made: sizes min_labels auto and the noise allowance of the cut.")
        positive_label: float = Field(1.0, description="The positive class for f1/precision/recall/roc_auc.")
        champion_only: bool = Field(
            True, description="Score only the champion's own predictions (a new champion is not blamed for its predecessor's)."
        )
        maturity: Literal["auto", "none"] | PositiveDuration = Field(
            "auto",
            description="Which window to judge: auto = the one ending the p95 label delay ago (its labels are in); "
            "a duration = ending that long ago; none = ending now.",
        )

        @field_validator("min_labels")
        @classmethod
        def _positive(cls, v: str | int) -> str | int:
            if isinstance(v, int) and v < 1:
                raise ValueError("min_labels must be auto or at least 1")
            return v

        @field_validator("thresholds")
        @classmethod
        def _some(cls, v: dict[str, float]) -> dict[str, float]:
            if not v:
                raise ValueError("give at least one metric threshold")
            bad = [m for m, x in v.items() if not 0.0 <= x <= 1.0]
            if bad:
                raise ValueError(f"thresholds must be within [0, 1]: {', '.join(bad)}")
            return v

    def needed(self) -> dict[str, int]:
        """Labels each thresholded metric is judged on: ``min_labels``, or its auto size per floor."""
        p = self.params
        if p.min_labels != AUTO:
            return {m: int(p.min_labels) for m in p.thresholds}
        return {m: min_samples_for(t, tolerance=p.tolerance) for m, t in p.thresholds.items()}

    def evaluate(self, ctx: TriggerContext) -> Decision:
        p = self.params
        delay = ctx.label_delay()
        lag = maturity_lag(p.maturity, delay)
        needed = self.needed()
        need = max(needed.values())
        w, span = judged_labels(ctx, p.window, min_samples=need, max_window=p.max_window,
                                champion_only=p.champion_only, lag=lag)
        n, end = len(w), span.end
        evidence: dict = {"n_labelled": n, "n_predictions": w.n_predictions, "label_coverage": w.coverage,
                          "thresholds": dict(p.thresholds), "min_labels": needed, "window": span.to_dict(),
                          "window_start": span.start.isoformat(), "window_end": end.isoformat(),
                          "maturity": {"mode": p.maturity if isinstance(p.maturity, str) else "fixed",
                                       "lag_s": lag.total_seconds(),
                                       "label_delay": None if delay is None else delay.to_dict()}}
        # window auto: each metric on its own newest rows; a fixed window: all of them.
        judged_on = {m: (n if p.window != AUTO else min(n, k)) for m, k in needed.items() if n >= k}
        if not judged_on:
            return Decision.insufficient(
                self.label, reason=_too_few(n, need if p.window == AUTO else min(needed.values()), span, lag, delay,
                                            ctx.now, w.coverage, p.maturity), evidence=evidence)
        scored: dict[str, float] = {}
        cuts: dict[str, float] = {}
        pvalues: dict[str, float] = {}
        for m, k in judged_on.items():
            y, yp, sc = w.y_true[n - k:], w.y_pred[n - k:], w.score[n - k:]
            value = classification_metrics(y, yp, sc, p.positive_label)[m]
            if value is not None:
                scored[m] = value
                cuts[m] = metric_cut(m, p.thresholds[m], y, yp, p.positive_label, p.tolerance)
                pvalues[m] = metric_pvalue(m, p.thresholds[m], value, y, yp, p.positive_label, p.tolerance)
        evidence["metrics"] = {m: scored.get(m) for m in p.thresholds}
        evidence["cuts"] = cuts
        evidence["not_judged"] = [m for m in p.thresholds if m not in judged_on]
        judged = _judged(span.span, lag, delay, end, w.coverage) if p.window != AUTO else \
            f"({span.describe()}, {w.coverage:.0%} coverage)"
        if not scored:
            return Decision.insufficient(
                self.label, reason=f"None of {', '.join(p.thresholds)} is defined on these labels "
                "(one class only, or no scores).", evidence=evidence,
            )
        # The worst metric is the one furthest below (or least above) its cut.
        worst = min(scored, key=lambda m: scored[m] - cuts[m])
        failing = [m for m in scored if scored[m] < cuts[m]]
        # The trigger's p-value (what a fleet's false-retrain control reads): Bonferroni over the
        # judged metrics; it fired exactly when pvalue < len(pvalues) * alpha.
        evidence |= {"failing": failing, "worst": worst, "pvalues": pvalues, "pvalue": bonferroni(list(pvalues.values())),
                     "alpha": DEFAULT_ALPHA}
        value, threshold = scored[worst], p.thresholds[worst]
        waiting = "".join(f"; {m} not judged yet ({n} of {needed[m]} labels)" for m in evidence["not_judged"])

        def cut(m: str) -> str:
            return f"{p.thresholds[m]:.2f}" if cuts[m] >= p.thresholds[m] else f"{p.thresholds[m]:.2f} (cut {cuts[m]:.3f})"

        if failing:
            parts = ", ".join(f"{m} {scored[m]:.3f} < {cut(m)}" for m in failing)
            return Decision.fire(
                self.label, reason=f"On {n} labelled predictions {judged}: {parts}{waiting}.",
                value=value, threshold=threshold, evidence=evidence,
            )
        parts = ", ".join(f"{m} {scored[m]:.3f} (floor {cut(m)})" for m in scored)
        return Decision.ok(
            self.label, reason=f"On {n} labelled predictions {judged}: {parts}, none below its cut{waiting}.",
            value=value, threshold=threshold, evidence=evidence,
        )


__all__ = ["PerformanceTrigger", "RecentLabels", "approx_duration", "champion_version",
           "classification_metrics", "judged_labels", "maturity_lag", "metric_cut", "metric_pvalue", "recent_labels"]
