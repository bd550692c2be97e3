"""``retrainer monitor | retrain | history | promote | rollback``: the loop from the command line.

``monitor`` and ``retrain`` run the Prefect flows in this process on the ephemeral Prefect API
(nothing to start); with ``PREFECT_API_URL`` set they report to that server instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from retrainer.cli.common import (
    ConfigOption,
    JsonOption,
    actor,
    fmt,
    open_config_and_store,
    open_config_store_registry,
    parse_instant,
)
from retrainer.cli.output import console, emit, kv_table
from retrainer.cli.prefect_console import quiet_flow_console

if TYPE_CHECKING:
    from retrainer.store import Store


# The top-level loop commands (monitor, retrain, history, promote, rollback). Joined into the root app by retrainer.cli.
commands = typer.Typer()


@commands.command("monitor")
def monitor_cmd(
    config: Path = ConfigOption,
    at: str | None = typer.Option(None, "--at", help="Evaluate as of this instant (default: now)."),
    run_retrain: bool = typer.Option(False, "--retrain", help="When the policy fires, run the retrain flow too."),
    as_json: bool = JsonOption,
) -> None:
    """Run the monitor flow: check the policy, audit, and request a retrain when it fires."""
    now = _past_instant(at)
    _preflight(config)
    from retrainer.flows.monitor import monitor

    quiet_flow_console()
    result = monitor(config_path=str(config), now=now, run_retrain=run_retrain)

    def render(r: dict[str, Any]) -> None:
        verdict = "[bold red]retrain[/] (" + ", ".join(r["reasons"]) + ")" if r["should_retrain"] else "[green]no retrain[/]"
        console.print(f"{r['model']} at {r['checked_at']}: {verdict}")
        for label, c in r["checks"].items():
            console.print(f"  {label:<14} {c['status']:<17} {fmt(c['value']):>10} / {fmt(c['threshold']):<8} {c['reason']}")
        if r.get("retrain"):
            _render_retrain(r["retrain"])

    emit(result, as_json, render)


@commands.command("retrain")
def retrain_cmd(
    config: Path = ConfigOption,
    force: bool = typer.Option(False, "--force", help="Retrain even if no trigger fires (reason: manual)."),
    reason: list[str] = typer.Option([], "--reason", metavar="<str>",
                                     help="Trigger label to record as the reason; repeat for several."),
    at: str | None = typer.Option(None, "--at", help="Train on data up to this instant (default: now)."),
    as_json: bool = JsonOption,
) -> None:
    """Run the retrain flow: train, evaluate against the champion, gate, register, roll out."""
    now = _past_instant(at)
    _preflight(config)
    from retrainer.flows.retrain import retrain

    quiet_flow_console()
    result = retrain(config_path=str(config), reasons=list(reason), force=force, now=now)
    emit(result, as_json, _render_retrain)
    if result["status"] == "failed":
        raise typer.Exit(1)


def _past_instant(at: str | None) -> Any:
    """``--at`` parsed; the future is refused: a check or retrain 'as of' tomorrow would record a run
    that has not happened and read every window with a negative age."""
    if not at:
        return None
    from datetime import datetime, timezone

    from retrainer.errors import ConfigError

    now = parse_instant(at, "--at")
    if now > datetime.now(timezone.utc):
        raise ConfigError(f"--at {at!r} is in the future; give an instant up to now, or leave --at out for now")
    return now


def _preflight(config: Path) -> None:
    """Config and store checked before Prefect starts: a missing store is one line, not a flow run."""
    _, store = open_config_and_store(config)
    store.close()


def _render_retrain(r: dict[str, Any]) -> None:
    style = {"success": "green", "no_improvement": "yellow", "superseded": "yellow", "skipped": "dim"}.get(r["status"], "red")
    console.print(f"[{style}]{r['status']}[/] {r['model']}" + (f" → version {r['version']}" if r.get("version") else ""))
    rows = {"reasons": ", ".join(r["reasons"]) or "-", "rollout": r.get("rollout") or "-"}
    for metric, value in (r.get("candidate_metrics") or {}).items():
        champion = (r.get("champion_metrics") or {}).get(metric)
        rows[metric] = f"candidate {fmt(value)}" + (f" vs champion {fmt(champion)}" if champion is not None else "")
    delta = r.get("offline_delta")
    if delta and delta.get("mean") is not None:
        lo, hi = delta.get("interval_95") or (None, None)
        ci = "" if lo is None else f" (95% {lo:+.4f} to {hi:+.4f})"
        rows["offline Δ"] = f"{delta['metric']} {delta['mean']:+.4f}{ci}, {delta['n']} paired rows"
    if r.get("gate"):
        rows["gate"] = r["gate"]["reason"]
    console.print(kv_table("retrain", rows))


@commands.command("history")
def history_cmd(
    config: Path = ConfigOption,
    limit: int = typer.Option(20, help="Most recent retrain runs to show."),
    verify: bool = typer.Option(False, "--verify",
                                help="Recompute the ledger's hash chain; exit 1 and name the first bad row if it is broken."),
    as_json: bool = JsonOption,
) -> None:
    """The promotion ledger (append-only), the rollouts with their stages, the guard's looks and the latest retrain runs."""
    from dataclasses import asdict

    from retrainer.deployments.rollout.guard import AUDIT_ROLE

    from rich.table import Table

    cfg, store = open_config_and_store(config)
    name = cfg.model.name
    if verify:
        _verify_ledger(store, name, as_json)
        return
    data = {
        "model": name,
        "champion": store.champion(name),
        "ledger": [asdict(e) for e in store.ledger(name)],
        "runs": [asdict(r) for r in store.runs(name, limit)],
        "rollouts": [r.to_dict() for r in store.rollouts(name)],
        # The guard's verdict rows (one per look; its per-check rows are in the evidence audit too).
        "guard": [asdict(e) for e in store.evaluations(name, role=AUDIT_ROLE, limit=limit) if e.trigger == "guard"],
    }

    def render(d: dict[str, Any]) -> None:
        console.print(f"{d['model']}: champion {d['champion'] or '(none)'}")
        ledger = Table("at", "action", "from", "to", "actor", "reason", title="ledger", title_justify="left")
        for e in d["ledger"]:
            ledger.add_row(e["at"].isoformat(timespec="seconds"), e["action"], fmt(e["from_version"]),
                           fmt(e["to_version"]), e["actor"], e["reason"])
        console.print(ledger)
        if d["rollouts"]:
            rollouts = Table("id", "version", "vs", "stage", "stages", "last decision", title="rollouts", title_justify="left")
            for r in d["rollouts"]:
                stages = " → ".join(f"{s['stage']} {s['at'][:16]}" for s in r["stages"])
                rollouts.add_row(str(r["id"]), r["version"], fmt(r["champion"]), r["stage"], stages,
                                 f"{fmt(r['decision'])}: {fmt(r['explanation'])}")
            console.print(rollouts)
        if d["guard"]:
            guard = Table("at", "rollout", "version", "rollback", "reason", title="guard looks", title_justify="left")
            for e in d["guard"]:
                guard.add_row(e["evaluated_at"].isoformat(timespec="seconds"), str(e["evidence"].get("rollout_id")),
                              fmt(e["evidence"].get("version")), "yes" if e["fired"] else "no", e["reason"])
            console.print(guard)
        runs = Table("id", "started", "status", "version", "reasons", title="retrain runs", title_justify="left")
        for r in d["runs"]:
            runs.add_row(str(r["id"]), r["started_at"].isoformat(timespec="seconds"), r["status"],
                         fmt(r["version"]), ", ".join(r["reasons"]))
        console.print(runs)

    emit(data, as_json, render)


def _verify_ledger(store: Store, name: str, as_json: bool) -> None:
    """The chain's verdict; a broken chain is a verdict, not a usage error: exit 1 (not 2)."""
    from dataclasses import asdict

    verdict = store.verify_ledger()
    data: dict[str, Any] = {"model": name, "store": store.safe_url, **verdict.to_dict(), "first_bad_row": None}
    if verdict.first_bad_id is not None:
        # The chain spans every model in the store; the row is shown when it is this model's.
        bad = [asdict(e) for e in store.ledger(name) if e.id == verdict.first_bad_id]
        data["first_bad_row"] = bad[0] if bad else None
    store.close()

    def render(d: dict[str, Any]) -> None:
        if d["ok"]:
            console.print(f"[green]ok[/]: {d['reason']} ({d['store']})")
            return
        console.print(f"[bold red]broken[/]: {d['reason']} ({d['store']})")
        row = d["first_bad_row"]
        if row:
            console.print(f"  first bad row {row['id']}: {row['at'].isoformat(timespec='seconds')} {row['action']} "
                          f"{fmt(row['from_version'])} → {fmt(row['to_version'])} by {row['actor']}: {row['reason']}")
        console.print("  Do not act on this ledger: restore the store from a backup taken before that row.")

    emit(data, as_json, render)
    if not verdict.ok:
        raise typer.Exit(1)


@commands.command("promote")
def promote_cmd(
    version: str = typer.Argument(..., help="Registered version to make the champion."),
    config: Path = ConfigOption,
    reason: str = typer.Option("manual promotion", help="Recorded in the ledger."),
    as_json: bool = JsonOption,
) -> None:
    """Make VERSION the champion (compare-and-set against the current one; a ledger row either way)."""
    from dataclasses import asdict

    from retrainer.deployments.rollout.promotion import promote

    _, store, registry = open_config_store_registry(config)
    result = promote(registry, store, version=version, expected_champion=store.champion(registry.model_name),
                     actor=actor(), reason=reason)
    emit(asdict(result), as_json, lambda r: console.print(
        f"{r['status']}: champion is now {r['champion']}" + (f" (was {r['from_version']})" if r["from_version"] else "")))
    if result.status != "promoted":
        raise typer.Exit(1)


@commands.command("rollback")
def rollback_cmd(
    config: Path = ConfigOption,
    reason: str = typer.Option("manual rollback", help="Recorded in the ledger."),
    expected: str | None = typer.Option(
        None, "--expected", metavar="<version>",
        help="Roll back only if VERSION is still the champion (two rollbacks for one incident move one step).",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Put the previous champion back, in one step (compare-and-set; superseded exits 1)."""
    from dataclasses import asdict

    from retrainer.deployments.rollout.promotion import rollback

    _, store, registry = open_config_store_registry(config)
    result = rollback(registry, store, actor=actor(), reason=reason, expected_champion=expected)
    emit(asdict(result), as_json, lambda r: console.print(
        f"{r['status']}: champion {r['from_version']} → {r['to_version']}" if r["status"] == "rolled_back"
        else f"{r['status']}: champion is {r['champion']}, not {r['from_version']}: nothing rolled back"))
    if result.status != "rolled_back":
        raise typer.Exit(1)
