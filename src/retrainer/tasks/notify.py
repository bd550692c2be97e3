"""Telling the world: Prefect events (always) and a Prefect notification block (if configured).

Events are what deployment triggers listen to: ``retrainer.retrain.requested`` on the resource
``retrainer.model.<name>`` starts the event-triggered ``retrain`` deployment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from prefect import task

log = logging.getLogger(__name__)

RETRAIN_REQUESTED = "retrainer.retrain.requested"
RETRAIN_FAILED = "retrainer.retrain.failed"
RETRAIN_SUCCEEDED = "retrainer.retrain.succeeded"


def model_resource(model_name: str) -> dict[str, str]:
    """The Prefect resource every retrainer event about ``model_name`` is attached to."""
    return {"prefect.resource.id": f"retrainer.model.{model_name}", "prefect.resource.name": model_name}


def emit(event: str, model_name: str, payload: Mapping[str, Any]) -> str | None:
    """Emit ``event`` for the model; returns the event id (None when no events client is configured)."""
    from prefect.events import emit_event

    sent = emit_event(event=event, resource=model_resource(model_name), payload=dict(payload))
    return str(sent.id) if sent is not None else None


def request_retrain(model_name: str, *, config_path: str, reasons: Sequence[str], checked_at: str) -> str | None:
    return emit(
        RETRAIN_REQUESTED,
        model_name,
        {"config_path": config_path, "reasons": list(reasons), "checked_at": checked_at},
    )


def notify_failure(block_name: str | None, *, model_name: str, error: str) -> bool:
    """Send a failure message through the named notification block; False when none is configured.

    ``block_name`` is ``<block-type-slug>/<block-name>`` as Prefect's ``Block.load`` expects.
    A broken block must not mask the original failure, so its own error is logged, not raised.
    """
    return send_notification(block_name, subject="retrainer: retrain failed",
                             body=f"retrainer: retraining {model_name!r} failed: {error}")


def send_notification(block_name: str | None, *, subject: str, body: str) -> bool:
    """Send ``body`` through the named notification block; False when none is configured or it failed
    (logged, never raised: an alert must not mask what it reports)."""
    if not block_name:
        return False
    from prefect.blocks.core import Block

    try:
        Block.load(block_name).notify(body=body, subject=subject)
    except Exception as exc:  # noqa: BLE001 - see docstring
        log.error("notification block %r could not send %r: %s", block_name, subject, exc)
        return False
    return True


emit_task = task(emit, name="emit-event", retries=2, retry_delay_seconds=1)
notify_failure_task = task(notify_failure, name="notify-failure")
