"""``performance``: the model's quality on recently labelled predictions fell below a floor.

Reads the predictions of the last ``window`` whose label had arrived by ``now``
(``ctx.labelled``) and computes accuracy / f1 / precision / recall (binary, of
``positive_label``) and roc_auc (from the scores), with scikit-learn's definitions
(a zero denominator gives 0, as sklearn's ``zero_division`` default does; tested against
sklearn). Fires when any configured metric is below its threshold. With fewer than
``min_labels`` labels it says ``insufficient_data``: a handful of late labels is not evidence.
Label coverage (labelled / all predictions in the window) is in the evidence.

Labels come late (a default is known weeks after the loan), so the window ending now is
mostly unlabelled. ``maturity`` moves the judged window back: ``auto`` (the default) judges the
``window`` that ends the p95 label delay ago (``ctx.label_delay``: labels that arrived in the
last 30 days), so nearly all its labels are in; a duration ends it that long ago; ``none`` ends
it now. Labels still count only once arrived by ``now``. The evidence and reason state the
delay used and the coverage; when a window is too young for its labels, the reason says so
and names the last complete window.

>>> from retrainer.testing import make_context, synthetic_log
>>> ctx = make_context(synthetic_log(drifted=True))
>>> d = PerformanceTrigger({"window": "2d", "min_labels": 50}).evaluate(ctx)
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
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.decision import Decision
from retrainer.windows import LabelDelay

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
    version = ctx.champion.version if champion_only and ctx.champion is not None else None
    w = ctx.labelled(window, model_version=version, lag=lag)
    y_true, y_pred = np.asarray(w.y_true, float), np.asarray(w.y_pred, float)
    known = np.isfinite(y_true) & np.isfinite(y_pred)
    return RecentLabels(version, y_true[known], y_pred[known], np.asarray(w.score, float)[known],
                        w.n_predictions, w.coverage)


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


def _too_few(n: int, p: PerformanceTrigger.Params, lag: timedelta, delay: LabelDelay | None, now: datetime,
             coverage: float, n_predictions: int) -> str:
    """Why there are not enough labels: the delay (and the last window that has them), or volume."""
    if delay is not None and delay.p95 is not None and lag < delay.p95:
        hint = "" if p.maturity == "auto" else "; maturity: auto judges that one"
        return (f"Labels arrive after {approx_duration(delay.p95)} (p95); {_ending(p.window, lag, now)} has "
                f"{coverage:.0%} coverage ({n} labelled, {p.min_labels} needed); the last complete window ended "
                f"{_day(now - delay.p95)}{hint}.")
    if delay is None and p.maturity == "auto":
        why = "the label delay is unknown (no label arrived in the last 30d, or the source does not measure it)"
    elif lag > timedelta(0):
        why = f"labels arrive after {approx_duration(lag)}" + (" (p95)" if p.maturity == "auto" else " (maturity)")
    else:
        why = ""
    empty = "; no predictions were made in it" if n_predictions == 0 else ""
    return (f"Only {n} labelled predictions in {_ending(p.window, lag, now)} (coverage {coverage:.0%}"
            f"{'; ' + why if why else ''}){empty}, {p.min_labels} needed to judge performance.")


class PerformanceTrigger(Trigger):
    """Fires when a metric over recently labelled predictions is below its threshold."""

    name = "performance"

    class Params(Trigger.Params):
        window: PositiveDuration = Field(timedelta(days=7), description="Predictions made within this, labelled by now.")
        thresholds: dict[Metric, float] = Field(
            default_factory=lambda: {"accuracy": 0.85, "f1": 0.70},
            description="Floor per metric (accuracy, f1, precision, recall, roc_auc); below it fires.",
        )
        min_labels: int = Field(200, ge=1, description="Fewer labels than this: insufficient_data.")
        positive_label: float = Field(1.0, description="The positive class for f1/precision/recall/roc_auc.")
        champion_only: bool = Field(
            True, description="Score only the champion's own predictions (a new champion is not blamed for its predecessor's)."
        )
        maturity: Literal["auto", "none"] | PositiveDuration = Field(
            "auto",
            description="Which window to judge: auto = the one ending the p95 label delay ago (its labels are in); "
            "a duration = ending that long ago; none = ending now.",
        )

        @field_validator("thresholds")
        @classmethod
        def _some(cls, v: dict[str, float]) -> dict[str, float]:
            if not v:
                raise ValueError("give at least one metric threshold")
            bad = [m for m, x in v.items() if not 0.0 <= x <= 1.0]
            if bad:
                raise ValueError(f"thresholds must be within [0, 1]: {', '.join(bad)}")
            return v

    def evaluate(self, ctx: TriggerContext) -> Decision:
        p = self.params
        delay = ctx.label_delay()
        lag = maturity_lag(p.maturity, delay)
        w = recent_labels(ctx, p.window, champion_only=p.champion_only, lag=lag)
        n = len(w)
        end = ctx.now - lag
        evidence: dict = {"n_labelled": n, "n_predictions": w.n_predictions, "label_coverage": w.coverage,
                          "thresholds": dict(p.thresholds),
                          "window_start": (end - p.window).isoformat(), "window_end": end.isoformat(),
                          "maturity": {"mode": p.maturity if isinstance(p.maturity, str) else "fixed",
                                       "lag_s": lag.total_seconds(),
                                       "label_delay": None if delay is None else delay.to_dict()}}
        judged = _judged(p.window, lag, delay, end, w.coverage)
        if n < p.min_labels:
            return Decision.insufficient(
                self.label, reason=_too_few(n, p, lag, delay, ctx.now, w.coverage, w.n_predictions), evidence=evidence
            )
        metrics = classification_metrics(w.y_true, w.y_pred, w.score, p.positive_label)
        scored = {m: metrics[m] for m in p.thresholds if metrics[m] is not None}
        evidence["metrics"] = {m: metrics[m] for m in p.thresholds}
        if not scored:
            return Decision.insufficient(
                self.label, reason=f"None of {', '.join(p.thresholds)} is defined on these labels "
                "(one class only, or no scores).", evidence=evidence,
            )
        # The worst metric is the one furthest below (or least above) its floor.
        worst = min(scored, key=lambda m: scored[m] - p.thresholds[m])
        failing = [m for m in scored if scored[m] < p.thresholds[m]]
        evidence |= {"failing": failing, "worst": worst}
        value, threshold = scored[worst], p.thresholds[worst]
        if failing:
            parts = ", ".join(f"{m} {scored[m]:.3f} < {p.thresholds[m]:.2f}" for m in failing)
            return Decision.fire(
                self.label, reason=f"On {n} labelled predictions {judged}: {parts}.",
                value=value, threshold=threshold, evidence=evidence,
            )
        parts = ", ".join(f"{m} {scored[m]:.3f}" for m in scored)
        return Decision.ok(
            self.label, reason=f"On {n} labelled predictions {judged}: {parts}, all above their floors.",
            value=value, threshold=threshold, evidence=evidence,
        )


__all__ = ["PerformanceTrigger", "RecentLabels", "approx_duration", "classification_metrics", "maturity_lag", "recent_labels"]
