"""Prefect tasks over promotion, rollback and rejection (the logic is in :mod:`retrainer.deployments.rollout.promotion`).

Registry and store calls: a transient failure is worth a retry, and every step is safe to repeat
(a retried promote that already went through finishes; a lost race ends superseded, never twice promoted).
"""

from __future__ import annotations

from retrainer.deployments.rollout.promotion import promote, reject, rollback
from retrainer.tasks._retry import io_task

promote_task = io_task(promote, name="promote")
rollback_task = io_task(rollback, name="rollback")
reject_task = io_task(reject, name="reject")

__all__ = ["promote_task", "reject_task", "rollback_task"]
