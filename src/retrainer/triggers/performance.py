"""``performance``: the model's quality on recently labelled predictions fell below a floor.

Reads the predictions of the last ``window`` whose label had arrived by ``now``
(``ctx.labelled``) and computes accuracy / f1 / precision / recall (binary, of
``positive_label``) and roc_auc (from the scores), with scikit-learn's definitions
(a zero denominator gives 0, as sklearn's ``zero_division`` default does; tested against
sklearn). Fires when any configured metric is below its threshold. With fewer than
``min_labels`` labels it says ``insufficient_data``: a handful of late labels is not evidence.
Label coverage (labelled / all predictions in the window) is in the evidence.

>>> from retrainer.testing import make_context, synthetic_log
>>> ctx = make_context(synthetic_log(drifted=True))
>>> d = PerformanceTrigger({"window": "2d", "min_labels": 50}).evaluate(ctx)
>>> d.status, d.evidence["worst"]
('fired', 'accuracy')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

import numpy as np
from pydantic import Field, field_validator
from scipy.stats import rankdata

from retrainer.durations import PositiveDuration, format_duration
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.decision import Decision

Metric = Literal["accuracy", "f1", "precision", "recall", "roc_auc"]


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, score: np.ndarray, positive_label: float = 1.0
) -> dict[str, float | None]:
    """The five metrics as sklearn defines them (binary); ``None`` where undefined (roc_auc with
    one class present or no finite score)."""
    t = y_true == positive_label
    p = y_pred == positive_label
    tp, fp, fn = float(np.sum(t & p)), float(np.sum(~t & p)), float(np.sum(t & ~p))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    out: dict[str, float | None] = {
        "accuracy": float(np.mean(y_true == y_pred)) if y_true.size else None,
        "precision": precision,
        "recall": recall,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "roc_auc": None,
    }
    scored = np.isfinite(score)
    pos, neg = int(np.sum(t & scored)), int(np.sum(~t & scored))
    if pos and neg:
        # Mann-Whitney U with mid-ranks for ties: equals sklearn's trapezoidal ROC AUC.
        ranks = rankdata(score[scored])
        out["roc_auc"] = float((ranks[t[scored]].sum() - pos * (pos + 1) / 2) / (pos * neg))
    return out


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


def recent_labels(ctx: TriggerContext, window: timedelta, *, champion_only: bool = True) -> RecentLabels:
    """Predictions of the last ``window`` labelled by ``ctx.now`` (the champion's own with
    ``champion_only`` and a champion), as the ``performance`` and ``cost_benefit`` triggers judge them."""
    version = ctx.champion.version if champion_only and ctx.champion is not None else None
    w = ctx.labelled(window, model_version=version)
    y_true, y_pred = np.asarray(w.y_true, float), np.asarray(w.y_pred, float)
    known = np.isfinite(y_true) & np.isfinite(y_pred)
    return RecentLabels(version, y_true[known], y_pred[known], np.asarray(w.score, float)[known],
                        w.n_predictions, w.coverage)


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
        w = recent_labels(ctx, p.window, champion_only=p.champion_only)
        n = len(w)
        evidence: dict = {"n_labelled": n, "n_predictions": w.n_predictions, "label_coverage": w.coverage,
                          "thresholds": dict(p.thresholds)}
        if n < p.min_labels:
            return Decision.insufficient(
                self.label,
                reason=f"Only {n} labelled predictions in the last {format_duration(p.window)} (coverage {w.coverage:.0%}), "
                f"{p.min_labels} needed to judge performance.",
                evidence=evidence,
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
                self.label, reason=f"On {n} labelled predictions ({w.coverage:.0%} coverage): {parts}.",
                value=value, threshold=threshold, evidence=evidence,
            )
        parts = ", ".join(f"{m} {scored[m]:.3f}" for m in scored)
        return Decision.ok(
            self.label, reason=f"On {n} labelled predictions ({w.coverage:.0%} coverage): {parts}, all above their floors.",
            value=value, threshold=threshold, evidence=evidence,
        )


__all__ = ["PerformanceTrigger", "RecentLabels", "classification_metrics", "recent_labels"]
