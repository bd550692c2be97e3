"""The monitor flow: check the policy now, leave an audit trail and an artifact, ask for a retrain.

The decision itself is :func:`retrainer.triggers.check.run_check` (a plain function, also behind
``retrainer check``). Before anything else the flow recomputes the promotion ledger's hash chain
(:func:`verify_ledger`): a broken chain fails the run with :class:`LedgerTamperedError` and
nothing is compacted, checked, retrained or promoted on top of a rewritten history. The flow adds the Prefect side: a markdown artifact with the checks table,
and, when the policy fires, the event ``retrainer.retrain.requested`` that the event-triggered
``retrain`` deployment listens for — or, with ``run_retrain``, the retrain as a subflow.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from retrainer.config import RetrainerConfig
from retrainer.fleet_config import load_model_config
from retrainer.errors import LedgerTamperedError
from retrainer.tasks import retry_on_transient


def checks_markdown(model_name: str, now: datetime, result: dict[str, Any]) -> str:
    """The check as a markdown table (the Prefect artifact, and the demo report reuse it)."""
    verdict = "**retrain**: " + ", ".join(result["reasons"]) if result["should_retrain"] else "no retrain"
    lines = [
        f"### retrainer check: `{model_name}` at {now.isoformat()}",
        "",
        f"Verdict: {verdict}",
        "",
        "| trigger | status | value | threshold | reason |",
        "|---|---|---|---|---|",
    ]
    for label, check in result["checks"].items():
        value = "" if check["value"] is None else f"{check['value']:.4g}"
        threshold = "" if check["threshold"] is None else f"{check['threshold']:.4g}"
        reason = str(check["reason"]).replace("|", "\\|")
        lines.append(f"| {label} | {check['status']} | {value} | {threshold} | {reason} |")
    return "\n".join(lines)


def artifact_key(model_name: str) -> str:
    # Artifact keys allow lowercase letters, digits and dashes only.
    return "retrainer-check-" + re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")


def verify_ledger(cfg: RetrainerConfig) -> dict[str, Any]:
    """Recompute the ledger's hash chain; raise :class:`LedgerTamperedError` naming the first bad row."""
    from retrainer.store import Store

    with Store.from_config(cfg) as store:
        verdict = store.verify_ledger()
        where = store.safe_url
    if not verdict.ok:
        raise LedgerTamperedError(
            f"{verdict.reason}: the promotion ledger in {where} cannot be trusted, so the monitor will not act on it; run `retrainer history --verify` and restore "
            "the store from a backup taken before that row"
        )
    return verdict.to_dict()


# A locked database is worth a retry; a broken chain (``permanent``) is not.
verify_ledger_task = task(verify_ledger, name="verify-ledger", retries=2, retry_delay_seconds=[2, 10],
                          retry_jitter_factor=0.5, retry_condition_fn=retry_on_transient)


def check_model(cfg: RetrainerConfig, *, now: datetime) -> dict[str, Any]:
    """Run the policy for one model and write its audit rows; JSON-able result."""
    from retrainer.deployments.rollout.promotion import resolved_champion_info
    from retrainer.registry import Registry
    from retrainer.store import Store
    from retrainer.triggers.check import run_check

    with Store.from_config(cfg) as store:
        champion = resolved_champion_info(Registry.from_config(cfg), store)  # store first, alias repaired
        return run_check(cfg, store=store, now=now, champion=champion).to_dict()


# Reads the store; a locked or briefly unreachable database is worth a couple of retries.
check_model_task = task(check_model, name="check", retries=2, retry_delay_seconds=[2, 10], retry_jitter_factor=0.5,
                        retry_condition_fn=retry_on_transient)


# Chunks younger than this are left to grow: the writer is still adding small ones there.
COMPACT_OLDER_THAN = timedelta(hours=1)


def compact_model(cfg: RetrainerConfig, *, now: datetime) -> dict[str, Any]:
    """Merge the model's small feature chunks older than an hour (the logic is the store's)."""
    from retrainer.store import Store

    with Store.open(cfg.store.url, max_batch=cfg.store.max_batch) as store:
        return store.compact_chunks(cfg.model.name, before=now - COMPACT_OLDER_THAN).to_dict()


compact_task = task(compact_model, name="compact", retries=2, retry_delay_seconds=[2, 10], retry_jitter_factor=0.5,
                    retry_condition_fn=retry_on_transient)


@flow(name="monitor", log_prints=False, validate_parameters=True)
def monitor(config_path: str, now: datetime | None = None, run_retrain: bool = False) -> dict[str, Any]:
    """Evaluate the policy of ``config_path`` at ``now`` (default: the current time)."""
    from retrainer.tasks.notify import request_retrain

    cfg = load_model_config(config_path)  # a retrainer.yaml, or fleet.yaml#model
    at = now or datetime.now(timezone.utc)
    # Raises on a broken chain: the flow run fails before any housekeeping, check or retrain.
    ledger = verify_ledger_task(cfg)
    # Housekeeping before the check reads its window; a failure is logged, never blocks the check.
    compacted = compact_task(cfg, now=at, return_state=True)
    if compacted.is_completed():
        compaction = compacted.result()
    else:
        compaction = None
        get_run_logger().warning("chunk compaction failed (the check runs anyway): %s", compacted.message)
    result = check_model_task(cfg, now=at)
    create_markdown_artifact(
        markdown=checks_markdown(cfg.model.name, at, result),
        key=artifact_key(cfg.model.name),
        description=f"retrainer policy check for {cfg.model.name}",
    )
    out: dict[str, Any] = {"model": cfg.model.name, "checked_at": at.isoformat(), **result, "retrain": None, "compaction": compaction,
                           "ledger": ledger}
    if result["should_retrain"]:
        out["event_id"] = request_retrain(
            cfg.model.name, config_path=str(Path(config_path).resolve()), reasons=result["reasons"],
            checked_at=at.isoformat(),
        )
        if run_retrain:
            from retrainer.flows.retrain import retrain

            out["retrain"] = retrain(config_path=config_path, reasons=list(result["reasons"]), now=at)
    return out
