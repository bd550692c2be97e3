"""The guard's Prefect side: one look at the guarded champion and, on a rollback, the event and the alert.

The decision is :func:`retrainer.deployments.rollout.guard.guard_rollout` (plain, injectable ``now``);
this adds what a rollback must tell the world: the ``retrainer.rollback.performed`` event on the
model's resource and a message through ``notifications.block``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prefect import task

from retrainer.config import RetrainerConfig
from retrainer.deployments.rollout.guard import ACTOR, GuardOutcome, ServingStatsSource, guard_rollout
from retrainer.tasks.notify import emit, send_notification

if TYPE_CHECKING:
    from retrainer.registry import Registry
    from retrainer.store import Store

ROLLBACK_PERFORMED = "retrainer.rollback.performed"


def announce_rollback(
    cfg: RetrainerConfig, *, rollout_id: int | None, version: str | None, restored: str | None, explanation: str,
    evidence: Mapping[str, Any] | None = None,
) -> str | None:
    """Emit ``retrainer.rollback.performed`` and alert the notification block; returns the event id."""
    name = cfg.model.name
    event_id = emit(ROLLBACK_PERFORMED, name, {"rollout_id": rollout_id, "rolled_back": version, "champion": restored,
                                               "explanation": explanation, "evidence": dict(evidence or {})})
    send_notification(cfg.notifications.block, subject=f"retrainer: {name} rolled back",
                      body=f"retrainer rolled {name!r} back from version {version} to {restored}: {explanation}")
    return event_id


def guard_and_rollback(
    cfg: RetrainerConfig, store: Store, registry: Registry, now: datetime, *, actor: str = ACTOR,
    serving: ServingStatsSource | None = None,
) -> GuardOutcome | None:
    """One guard look (None: no champion is guarded at ``now``); a rollback is announced."""
    out = guard_rollout(cfg, store, registry, now, actor=actor, serving=serving)
    if out is not None and out.action == "rolled_back":
        announce_rollback(cfg, rollout_id=out.rollout_id, version=out.version, restored=out.restored,
                          explanation=out.explanation, evidence=out.verdict.to_dict())
    return out


guard_and_rollback_task = task(guard_and_rollback, name="guard-and-rollback")

__all__ = ["ROLLBACK_PERFORMED", "announce_rollback", "guard_and_rollback", "guard_and_rollback_task"]
