"""Facts about the model in production, shared by the registry (which reads them) and triggers (which judge them).

A base module: the registry sits below triggers, so the type cannot live in ``triggers`` and be
returned by :class:`retrainer.registry.Registry`; and triggers must import without MLflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from retrainer.frozen import FrozenDict


def utc_aware(value: datetime | None, what: str) -> datetime | None:
    """``value`` in UTC; a naive datetime is refused (local? UTC? it silently shifts windows by hours)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware (e.g. datetime.now(timezone.utc)), got {value!r}")
    return value.astimezone(timezone.utc)


@dataclass(frozen=True)
class ChampionInfo:
    """Facts about the model in production (the ``champion`` alias)."""

    version: str
    created_at: datetime | None = None
    run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "created_at", utc_aware(self.created_at, "ChampionInfo.created_at"))
        object.__setattr__(self, "tags", FrozenDict(self.tags))


__all__ = ["ChampionInfo", "utc_aware"]
