"""The rollout flow: advance the model's rollout one step on the evidence, or say what it waits for.

The decisions are :func:`retrainer.deployments.rollout.advance.advance` (a plain function, also behind
``retrainer rollout advance``); this flow adds the Prefect side: an event per move
(``retrainer.rollout.advanced`` / ``.rejected`` / ``.promoted``) and a markdown artifact. It runs
every 15 minutes and on the events that mean something changed (prefect.yaml).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from prefect import flow

from retrainer.config import RetrainerConfig
from retrainer.fleet_config import load_model_config
from retrainer.tasks.guard import ROLLBACK_PERFORMED, announce_rollback

if TYPE_CHECKING:
    from retrainer.deployments.rollout.advance import RolloutStep

ROLLOUT_ADVANCED = "retrainer.rollout.advanced"
ROLLOUT_REJECTED = "retrainer.rollout.rejected"
ROLLOUT_PROMOTED = "retrainer.rollout.promoted"

# Which event a step announces; waiting and idle steps announce nothing, and a rollback is
# announced by the guard's own announce_rollback (event AND notification block).
_EVENTS = {
    "started": ROLLOUT_ADVANCED, "queued": ROLLOUT_ADVANCED, "advanced": ROLLOUT_ADVANCED, "aborted": ROLLOUT_ADVANCED,
    "rejected": ROLLOUT_REJECTED, "promoted": ROLLOUT_PROMOTED,
}


def emit_step(cfg: RetrainerConfig, step: RolloutStep) -> str | None:
    """Announce a step that moved the rollout; returns the event id (None: nothing to announce)."""
    from retrainer.tasks.notify import emit

    event = _EVENTS.get(step.action)
    if event is None:
        return None
    return emit(event, cfg.model.name, {"rollout_id": step.rollout_id, "version": step.version, "action": step.action,
                                        "from_stage": step.stage_before, "stage": step.stage,
                                        "explanation": step.explanation})


def step_markdown(step: dict[str, Any], now: datetime) -> str:
    lines = [f"### retrainer rollout: `{step['model']}` at {now.isoformat()}", "",
             f"**{step['action']}**: {step['explanation']}", ""]
    if step.get("version") is not None:
        lines += [f"- version {step['version']} (rollout {step['rollout_id']}): "
                  f"{step.get('stage_before') or '-'} -> {step.get('stage') or '-'}"]
    lines += [f"- waiting for: {w}" for w in step.get("waiting_for") or []]
    from retrainer.deployments.rollout.posterior import summary_line

    summary = summary_line(step.get("evidence"))
    if summary:
        lines.append(f"- posterior: {summary}")
    for check in (step.get("evidence") or {}).get("checks") or []:
        ok = check["passed"] if "passed" in check else not check.get("breached")  # stage checks | guard checks
        mark = "pass" if ok else "**fail**"
        lines.append(f"- {check['name']}: {mark} ({check['reason']})")
    return "\n".join(lines)


def artifact_key(model_name: str) -> str:
    return "retrainer-rollout-" + re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")


def advance_model(cfg: RetrainerConfig, *, now: datetime) -> dict[str, Any]:
    """One step for the model of ``cfg`` against its store and registry; JSON-able."""
    from retrainer.deployments.rollout.advance import advance
    from retrainer.registry import Registry
    from retrainer.store import Store

    with Store.from_config(cfg) as store:
        step = advance(cfg, store, Registry.from_config(cfg), now)
        restored = store.champion(cfg.model.name) if step.action == "rolled_back" else None
    if step.action == "rolled_back":
        announce_rollback(cfg, rollout_id=step.rollout_id, version=step.version, restored=restored,
                          explanation=step.explanation, evidence=step.evidence)
    else:
        emit_step(cfg, step)
    return step.to_dict()


@flow(name="rollout", log_prints=False, validate_parameters=True)
def rollout(config_path: str, now: datetime | None = None) -> dict[str, Any]:
    """Advance the rollout of the model of ``config_path`` one step at ``now`` (default: the current time)."""
    from prefect.artifacts import create_markdown_artifact

    cfg = load_model_config(config_path)  # a retrainer.yaml, or fleet.yaml#model
    at = now or datetime.now(timezone.utc)
    step = advance_model(cfg, now=at)
    create_markdown_artifact(markdown=step_markdown(step, at), key=artifact_key(cfg.model.name),
                             description=f"retrainer rollout step for {cfg.model.name}")
    return {"checked_at": at.isoformat(), **step}


__all__ = ["ROLLBACK_PERFORMED", "ROLLOUT_ADVANCED", "ROLLOUT_PROMOTED", "ROLLOUT_REJECTED", "advance_model", "emit_step", "rollout"]
