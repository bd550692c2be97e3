"""``retrainer rollout status|advance|abort``: the rollout flow's state, one step by hand, or a stop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from retrainer.cli.common import ConfigOption, JsonOption, actor, parse_instant
from retrainer.cli.common import open_config_store_registry as open_all
from retrainer.cli.output import console, emit, kv_table

rollout_app = typer.Typer(help="Challengers graduating shadow -> A/B -> champion on evidence.", no_args_is_help=True)


def _render_status(d: dict[str, Any]) -> None:
    if not d["rollouts"]:
        console.print(f"no rollout of {d['model']!r} yet")
        return
    from rich.table import Table

    from retrainer.deployments.rollout.posterior import summary_line

    t = Table(title=f"rollouts of {d['model']}", title_justify="left")
    for col in ("id", "version", "vs champion", "stage", "since", "stages", "posterior (delta)", "last decision"):
        t.add_column(col)
    for r in d["rollouts"]:
        stages = " -> ".join(f"{s['stage']} {s['at'][:16]}" for s in r["stages"])
        t.add_row(str(r["id"]), r["version"], str(r["champion"]), r["stage"], r["stage_started_at"][:19], stages,
                  summary_line(r["evidence"]) or "-", f"{r['decision']}: {r['explanation']}")
    console.print(t)


def _with_posterior(r: dict[str, Any]) -> dict[str, Any]:
    """The rollout with its last look's posterior lifted out of the evidence (docs/rollout.md):
    mean, 95% interval, P(worse by more than the margin), expected loss, pair counts, and the
    trail of one look a day."""
    ev = r.get("evidence") or {}
    post = ev.get("posterior") if isinstance(ev.get("posterior"), dict) and "interval" in ev["posterior"] else None
    r["posterior"] = None if post is None else {
        **post, "n_labelled": ev.get("n_labelled"), "n_unlabelled": ev.get("n_unlabelled"),
        "prior": ev.get("prior"), "action": ev.get("action")}
    r["trail"] = ev.get("trail") or []
    return r


@rollout_app.command("status")
def status(config: Path = ConfigOption, as_json: bool = JsonOption) -> None:
    """Every rollout of the model (oldest first): stage, stages with dates, the last decision."""
    cfg, store, _ = open_all(config)
    rollouts = [_with_posterior(r.to_dict()) for r in store.rollouts(cfg.model.name)]
    in_flight = next((r for r in rollouts if r["stage"] in ("staged", "shadow", "ab")), None)
    emit({"model": cfg.model.name, "in_flight": in_flight, "rollouts": rollouts}, as_json, _render_status)


def _render_step(d: dict[str, Any]) -> None:
    rows = {"action": f"[bold]{d['action']}[/]", "why": d["explanation"], "rollout": d["rollout_id"],
            "version": d["version"], "stage": f"{d['stage_before'] or '-'} -> {d['stage'] or '-'}"}
    rows.update({f"waiting for ({i + 1})": w for i, w in enumerate(d["waiting_for"])})
    console.print(kv_table(f"rollout of {d['model']}", rows))


@rollout_app.command("advance")
def advance_cmd(
    config: Path = ConfigOption,
    at: str | None = typer.Option(None, "--at", help="Judge the evidence as of this instant (default: now)."),
    as_json: bool = JsonOption,
) -> None:
    """Advance the rollout one step now (what the rollout flow does every 15 minutes)."""
    from datetime import datetime, timezone

    from retrainer.deployments.rollout.advance import advance

    now = parse_instant(at, "--at") if at else datetime.now(timezone.utc)
    cfg, store, registry = open_all(config)
    with store:
        step = advance(cfg, store, registry, now, actor=actor())
    emit(step.to_dict(), as_json, _render_step)


@rollout_app.command("abort")
def abort_cmd(
    reason: str = typer.Option("aborted by hand", "--reason", help="Recorded in the ledger."),
    config: Path = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Stop the rollout in flight: shadow off, A/B test aborted, challenger unstaged; the champion stays."""
    from datetime import datetime, timezone

    from retrainer.deployments.rollout.advance import abort

    cfg, store, registry = open_all(config)
    with store:
        step = abort(cfg, store, registry, datetime.now(timezone.utc), reason=reason, actor=actor())
    emit(step.to_dict(), as_json, _render_step)
