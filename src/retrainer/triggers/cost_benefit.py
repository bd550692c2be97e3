"""``cost_benefit``: retrain when keeping the champion is expected to cost more than retraining.

Over the coming ``horizon`` H, the champion is expected to lose::

    expected_loss = gap × traffic × error_cost
    gap           = max(0, fresh − champion)          # in error-rate terms: (1 − champion) − (1 − fresh)
    traffic       = predictions in the last ``window`` / ``window`` × H

and a retrain costs ``retrain_cost + mean duration of past retrains × cost_per_hour`` (the
second term only with ``cost_per_hour`` set and durations recorded). It fires when
``expected_loss > retrain cost``. ``value`` is the expected loss, ``threshold`` the retrain cost.

* ``champion`` is the champion's ``metric`` on its own predictions of the last ``window`` whose
  label had arrived by ``now`` (as the ``performance`` trigger computes it); with fewer than
  ``min_samples`` labels, the ``estimated_performance`` trigger's label-free estimate of it (CBPE
  on the champion's calibrated scores, arrived labels blended in), when the champion has a
  calibration map;
* ``fresh`` is what a fresh model reached: the mean holdout ``metric`` of the candidates of the
  last ``retrains`` retrain runs (``ctx.retrain_history``, clamped at ``now``), or, with no run
  recorded, the holdout figure stored with the champion's reference profile.

For ``metric: accuracy`` the gap is exactly the extra error rate, so ``error_cost`` is the cost of
one wrong prediction; for the other metrics, ``1 − metric`` is the loss per prediction.
Neither ``min_samples`` labels nor an estimate, or no fresh figure at all, is ``insufficient_data``.

>>> from retrainer.testing import make_context, standard_retrains, synthetic_log
>>> ctx = make_context(synthetic_log(drifted=True), retrains=standard_retrains())
>>> params = {"horizon": "30d", "window": "2d", "min_samples": 50, "retrain_cost": 200, "cost_per_hour": 60}
>>> d = CostBenefitTrigger(params).evaluate(ctx)
>>> d.status, round(d.evidence["gap"], 3), d.evidence["traffic"]["expected"]
('fired', 0.495, 2160.0)
>>> round(d.value, 1), d.threshold  # 0.495 × 2160 × 1 against 200 + 600 s × 60 / h
(1069.9, 210.0)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from pydantic import Field

from retrainer.durations import PositiveDuration, format_duration
from retrainer.metrics import classification_metrics
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.decision import Decision
from retrainer.triggers.estimated_performance import EstimatedPerformanceTrigger
from retrainer.triggers.performance import Metric, recent_labels

_HOUR = 3600.0


class CostBenefitTrigger(Trigger):
    """Fires when the champion's expected extra loss over the horizon exceeds the cost of a retrain."""

    name = "cost_benefit"

    class Params(Trigger.Params):
        horizon: PositiveDuration = Field(timedelta(days=30), description="How far ahead the loss is counted (H).")
        error_cost: float = Field(1.0, gt=0, description="Cost of one lost unit of the metric per prediction "
                                  "(for accuracy: one wrong prediction).")
        retrain_cost: float = Field(1000.0, ge=0, description="Fixed cost of one retrain, in the same unit.")
        cost_per_hour: float | None = Field(None, ge=0, description="Cost of one hour of retraining; with it, "
                                            "the mean measured duration of past retrains is added to the cost.")
        metric: Metric = Field("accuracy", description="The metric compared: accuracy, f1, precision, recall, roc_auc.")
        window: PositiveDuration = Field(timedelta(days=7), description="Recent predictions: labelled ones "
                                         "judge the champion, all of them give the traffic rate.")
        min_samples: int = Field(200, ge=1, description="Fewer labelled predictions than this: the label-free "
                                 "estimate, if the champion has a calibration map; else insufficient_data.")
        retrains: int = Field(3, ge=1, description="Average the fresh figure over this many past retrains.")
        positive_label: float = Field(1.0, description="The positive class for f1/precision/recall/roc_auc.")
        champion_only: bool = Field(True, description="Judge only the champion's own predictions.")

    def _champion(self, ctx: TriggerContext) -> tuple[float | None, dict[str, Any]]:
        p = self.params
        w = recent_labels(ctx, p.window, champion_only=p.champion_only)
        facts: dict[str, Any] = {"source": "realized", "version": w.version, "n_labelled": len(w),
                                 "n_predictions": w.n_predictions, "label_coverage": w.coverage}
        if len(w) < p.min_samples:
            return self._estimated(ctx, facts)
        value = classification_metrics(w.y_true, w.y_pred, w.score, p.positive_label)[p.metric]
        facts["value"] = value
        return value, facts

    def _estimated(self, ctx: TriggerContext, facts: dict[str, Any]) -> tuple[float | None, dict[str, Any]]:
        """The label-free estimate, read through ``estimated_performance`` itself (one estimator,
        not two): a floor of 0 never fires, so its Decision is only the figure and its evidence."""
        p = self.params
        probe = EstimatedPerformanceTrigger(
            {"window": p.window, "thresholds": {p.metric: 0.0}, "drop": {}, "min_predictions": p.min_samples,
             "positive_label": p.positive_label, "champion_only": p.champion_only}, label=f"{self.label}.estimate")
        d = probe.evaluate(ctx)
        value = (d.evidence.get("estimate") or {}).get(p.metric) if d.status in ("ok", "fired") else None
        if value is None:
            return None, {**facts, "estimate_unavailable": d.reason}
        e = d.evidence
        return float(value), {**facts, "source": "estimated", "value": float(value), "n_scored": e["n"],
                              "realized_share": e["realized_share"], "ci": e["ci"][p.metric],
                              "confidence": e["confidence"], "calibration": e["calibration"]}

    def _fresh(self, ctx: TriggerContext) -> tuple[float | None, dict[str, Any]]:
        p = self.params
        runs = [(r, r.metric(p.metric)) for r in ctx.retrain_history(p.retrains)]
        runs = [(r, v) for r, v in runs if v is not None]
        if runs:
            value = float(np.mean([v for _, v in runs]))
            return value, {"source": "retrain_runs", "value": value,
                           "runs": [{"at": r.at.isoformat(), "version": r.version, "value": v} for r, v in runs]}
        stored = (ctx.reference or {}).get("holdout_metrics") or {}
        if stored.get(p.metric) is not None:
            value = float(stored[p.metric])
            return value, {"source": "reference_profile", "value": value,
                           "version": None if ctx.champion is None else ctx.champion.version}
        return None, {"source": None}

    def _retrain_cost(self, ctx: TriggerContext) -> dict[str, Any]:
        p = self.params
        durations = [r.duration_s for r in ctx.retrain_history(p.retrains) if r.duration_s is not None]
        mean_s = float(np.mean(durations)) if durations else None
        compute = mean_s / _HOUR * p.cost_per_hour if mean_s is not None and p.cost_per_hour is not None else 0.0
        return {"fixed": p.retrain_cost, "cost_per_hour": p.cost_per_hour, "mean_duration_s": mean_s,
                "n_durations": len(durations), "compute": compute, "total": p.retrain_cost + compute}

    def evaluate(self, ctx: TriggerContext) -> Decision:
        p = self.params
        champion, champ_facts = self._champion(ctx)
        fresh, fresh_facts = self._fresh(ctx)
        evidence: dict[str, Any] = {"metric": p.metric, "horizon": format_duration(p.horizon),
                                    "window": format_duration(p.window), "champion": champ_facts, "fresh": fresh_facts}
        if champion is None:
            why = (f"only {champ_facts['n_labelled']} labelled predictions in the last {format_duration(p.window)} "
                   f"({p.min_samples} needed), and no estimate ({champ_facts['estimate_unavailable']})"
                   if "value" not in champ_facts else f"{p.metric} is undefined on them")
            return Decision.insufficient(self.label, reason=f"The champion's current {p.metric} is unknown: {why}.",
                                         evidence=evidence)
        if fresh is None:
            return Decision.insufficient(
                self.label, reason=f"No past retrain recorded a holdout {p.metric} and the champion's reference "
                "profile has none: nothing says what a fresh model would reach.", evidence=evidence)
        gap = max(0.0, fresh - champion)
        n_window = ctx.count_since(p.window)
        per_hour = n_window / (p.window.total_seconds() / _HOUR)
        expected = per_hour * p.horizon.total_seconds() / _HOUR
        expected_loss = gap * expected * p.error_cost
        cost = self._retrain_cost(ctx)
        evidence |= {
            "gap": gap, "raw_gap": fresh - champion, "error_cost": p.error_cost,
            "traffic": {"predictions_in_window": n_window, "per_hour": per_hour, "expected": expected},
            "expected_loss": expected_loss, "retrain_cost": cost, "net_benefit": expected_loss - cost["total"],
        }
        terms = (f"{p.metric} {champion:.3f} ({champ_facts['source']}) vs {fresh:.3f} for a fresh model ({fresh_facts['source']}): gap {gap:.3f} "
                 f"× {expected:,.0f} predictions over {format_duration(p.horizon)} × {p.error_cost:g} = {expected_loss:,.1f}")
        if expected_loss > cost["total"]:
            return Decision.fire(self.label, reason=f"Keeping the champion costs more than a retrain: {terms} "
                                 f"> {cost['total']:,.1f}.", value=expected_loss, threshold=cost["total"], evidence=evidence)
        return Decision.ok(self.label, reason=f"A retrain does not pay yet: {terms} <= {cost['total']:,.1f}.",
                           value=expected_loss, threshold=cost["total"], evidence=evidence)


__all__ = ["CostBenefitTrigger"]
