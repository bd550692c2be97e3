"""``model_age``: the production model is older than ``max_age``.

Age is measured from the registry's creation time of the champion version
(``ctx.champion.created_at``), not from the last retrain: a retrain whose candidate lost the
gate leaves an old champion in production, and this trigger keeps noticing it.
``value`` and ``threshold`` are in days.

>>> from datetime import datetime, timedelta, timezone
>>> from retrainer.triggers import ChampionInfo, TriggerContext
>>> now = datetime(2025, 3, 1, tzinfo=timezone.utc)
>>> champ = ChampionInfo("7", created_at=now - timedelta(days=100))
>>> ModelAgeTrigger({"max_age": "90d"}).evaluate(TriggerContext("m", now, champion=champ)).reason
'Champion version 7 is 100.0 days old, older than the 90d allowed.'
>>> ModelAgeTrigger().evaluate(TriggerContext("m", now)).status
'insufficient_data'
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from retrainer.durations import PositiveDuration, format_duration
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.decision import Decision

_DAY = 86400.0


class ModelAgeTrigger(Trigger):
    """Fires when the champion version was created more than ``max_age`` ago."""

    name = "model_age"

    class Params(Trigger.Params):
        max_age: PositiveDuration = Field(timedelta(days=30), description="Oldest a production model may be.")

    def evaluate(self, ctx: TriggerContext) -> Decision:
        champ = ctx.champion
        max_age = self.params.max_age
        threshold = max_age.total_seconds() / _DAY
        if champ is None:
            return Decision.insufficient(
                self.label, reason="There is no champion in production, so it has no age.", threshold=threshold
            )
        if champ.created_at is None:
            return Decision.insufficient(
                self.label, reason=f"Champion version {champ.version} has no creation time in the registry.",
                threshold=threshold, evidence={"version": champ.version},
            )
        age = ctx.now - champ.created_at
        days = age.total_seconds() / _DAY
        evidence = {"version": champ.version, "created_at": champ.created_at.isoformat(), "age_days": days}
        if age > max_age:
            return Decision.fire(
                self.label,
                reason=f"Champion version {champ.version} is {days:.1f} days old, older than the "
                f"{format_duration(max_age)} allowed.",
                value=days, threshold=threshold, evidence=evidence,
            )
        return Decision.ok(
            self.label,
            reason=f"Champion version {champ.version} is {days:.1f} days old (limit {format_duration(max_age)}).",
            value=days, threshold=threshold, evidence=evidence,
        )


__all__ = ["ModelAgeTrigger"]
