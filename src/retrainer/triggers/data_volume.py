"""``data_volume``: enough new labelled data has arrived to make a retrain worth it.

Counts predictions made since the last retrain (but no earlier than ``lookback`` ago) whose
label had arrived by ``now``; fires at ``min_samples`` or more. A model never retrained counts
the whole ``lookback``.

>>> from retrainer.testing import make_context, synthetic_log
>>> ctx = make_context(synthetic_log())
>>> DataVolumeTrigger({"min_samples": 500, "lookback": "30d"}).evaluate(ctx).reason
'930 new labelled rows since 2024-12-16T00:00:00+00:00, at least 500 needed: enough to retrain.'
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from retrainer.durations import PositiveDuration
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.decision import Decision


class DataVolumeTrigger(Trigger):
    """Fires when at least ``min_samples`` labelled rows arrived since the last retrain, within ``lookback``."""

    name = "data_volume"

    class Params(Trigger.Params):
        min_samples: int = Field(1000, ge=1, description="New labelled rows needed to fire.")
        lookback: PositiveDuration = Field(timedelta(days=30), description="Count no further back than this.")

    def evaluate(self, ctx: TriggerContext) -> Decision:
        p = self.params
        since = ctx.now - p.lookback
        if ctx.last_retrain_at is not None and ctx.last_retrain_at > since:
            since = ctx.last_retrain_at
        n = ctx.count_since(since, labelled=True)
        evidence = {"since": since.isoformat(), "new_labelled": n, "last_retrain_at":
                    None if ctx.last_retrain_at is None else ctx.last_retrain_at.isoformat()}
        if n >= p.min_samples:
            return Decision.fire(
                self.label,
                reason=f"{n} new labelled rows since {since.isoformat()}, at least {p.min_samples} needed: "
                "enough to retrain.",
                value=n, threshold=p.min_samples, evidence=evidence,
            )
        return Decision.ok(
            self.label, reason=f"{n} new labelled rows since {since.isoformat()}, {p.min_samples} needed.",
            value=n, threshold=p.min_samples, evidence=evidence,
        )


__all__ = ["DataVolumeTrigger"]
