"""``error_rate``: too many recent predictions turned out wrong.

>>> from retrainer.testing import make_context, synthetic_log
>>> d = ErrorRateTrigger({"max_error_rate": 0.2, "window": "3d"}).evaluate(make_context(synthetic_log(drifted=True)))
>>> d.fired, d.trigger
(True, 'error_rate')
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from pydantic import Field

from retrainer.durations import Duration
from retrainer.triggers import Decision, Trigger, TriggerContext


class ErrorRateTrigger(Trigger):
    """Fires when the share of wrong predictions among the labelled ones exceeds ``max_error_rate``."""

    name = "error_rate"  # must equal the entry-point name

    class Params(Trigger.Params):  # inherits extra="forbid", frozen=True
        max_error_rate: float = Field(0.2, gt=0, lt=1, description="Fire above this share of errors.")
        window: Duration = Field(timedelta(days=7), description="Predictions made within this, labelled by now.")
        min_labels: int = Field(100, ge=1, description="Fewer labels: insufficient_data.")

    def evaluate(self, ctx: TriggerContext) -> Decision:
        p = self.params
        w = ctx.labelled(p.window)  # read only through the context: it is clamped at ctx.now
        known = np.isfinite(w.y_true) & np.isfinite(w.y_pred)
        n = int(known.sum())
        if n < p.min_labels:
            return Decision.insufficient(self.label, reason=f"Only {n} labelled predictions, {p.min_labels} needed.",
                                         evidence={"n_labelled": n})
        rate = float(np.mean(w.y_true[known] != w.y_pred[known]))
        evidence = {"n_labelled": n, "errors": int(round(rate * n)), "coverage": w.coverage}
        if rate > p.max_error_rate:
            return Decision.fire(self.label, reason=f"{rate:.1%} of {n} labelled predictions were wrong, "
                                 f"above {p.max_error_rate:.0%}.", value=rate, threshold=p.max_error_rate,
                                 evidence=evidence)
        return Decision.ok(self.label, reason=f"{rate:.1%} of {n} labelled predictions were wrong.",
                           value=rate, threshold=p.max_error_rate, evidence=evidence)
