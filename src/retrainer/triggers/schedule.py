"""``schedule``: retrain on a fixed calendar, whatever the data says.

Fires when the last retrain is older than ``interval``, or, with ``cron``, when a cron
occurrence has passed since it. A model that was never retrained fires at once (there is no
schedule to be inside of). ``value`` is the days since the last retrain; ``threshold`` is the
days from the last retrain to when the next one is due.

>>> from datetime import datetime, timedelta, timezone
>>> from retrainer.triggers import TriggerContext
>>> now = datetime(2025, 3, 1, tzinfo=timezone.utc)
>>> ctx = TriggerContext("m", now, last_retrain_at=now - timedelta(days=31))
>>> ScheduleTrigger({"interval": "30d"}).evaluate(ctx).reason
'Last retrain was 31.0 days ago; the schedule (every 30d) made the next one due at 2025-02-28T00:00:00+00:00.'
>>> ScheduleTrigger({"cron": "0 3 * * 1"}).evaluate(TriggerContext("m", now)).reason
'The model was never retrained: the schedule fires at once.'
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import Field, field_validator, model_validator

from retrainer.durations import Duration, format_duration
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.decision import Decision

_DAY = 86400.0


class ScheduleTrigger(Trigger):
    """Fires when ``interval`` has elapsed, or a ``cron`` occurrence has passed, since the last retrain."""

    name = "schedule"

    class Params(Trigger.Params):
        interval: Duration | None = Field(None, description="Retrain when the last retrain is older than this (default 30d).")
        cron: str | None = Field(None, description="Or: a cron expression (5 fields); fires once an occurrence has passed.")
        timezone: str = Field("UTC", description="Time zone the cron expression is read in.")

        @field_validator("cron")
        @classmethod
        def _valid_cron(cls, v: str | None) -> str | None:
            if v is not None and not croniter.is_valid(v):
                raise ValueError(f"{v!r} is not a valid cron expression (e.g. '0 3 * * 1' = Mondays 03:00)")
            return v

        @field_validator("timezone")
        @classmethod
        def _valid_tz(cls, v: str) -> str:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{v!r} is not an IANA time zone (e.g. 'UTC', 'Europe/Paris')") from None
            return v

        @model_validator(mode="after")
        def _one_schedule(self) -> ScheduleTrigger.Params:
            if self.interval is not None and self.cron is not None:
                raise ValueError("give `interval` or `cron`, not both")
            if self.interval is not None and self.interval <= timedelta(0):
                raise ValueError("`interval` must be positive")
            return self

    def _due(self, last: datetime) -> tuple[datetime, str]:
        p = self.params
        if p.cron is None:
            interval = p.interval or timedelta(days=30)
            return last + interval, f"every {format_duration(interval)}"
        local = last.astimezone(ZoneInfo(p.timezone))
        nxt: datetime = croniter(p.cron, local).get_next(datetime)
        return nxt.astimezone(last.tzinfo), f"cron {p.cron!r} in {p.timezone}"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        last = ctx.last_retrain_at
        if last is None:
            return Decision.fire(
                self.label, reason="The model was never retrained: the schedule fires at once.",
                evidence={"last_retrain_at": None, "never_trained": True},
            )
        due, what = self._due(last)
        age = (ctx.now - last).total_seconds() / _DAY
        threshold = (due - last).total_seconds() / _DAY
        evidence = {"last_retrain_at": last.isoformat(), "due_at": due.isoformat(), "schedule": what,
                    "never_trained": False}
        if ctx.now >= due:
            return Decision.fire(
                self.label,
                reason=f"Last retrain was {age:.1f} days ago; the schedule ({what}) made the next one due at "
                f"{due.isoformat()}.",
                value=age, threshold=threshold, evidence=evidence,
            )
        return Decision.ok(
            self.label, reason=f"Last retrain was {age:.1f} days ago; next due at {due.isoformat()} ({what}).",
            value=age, threshold=threshold, evidence=evidence,
        )


__all__ = ["ScheduleTrigger"]
