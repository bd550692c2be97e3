"""``retrainer fleet check``: every model of a fleet.yaml, one fleet-level false-retrain control."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from retrainer.cli.common import JsonOption, parse_instant
from retrainer.cli.output import console, emit, err_console

fleet_app = typer.Typer(help="Check many models at once (fleet.yaml).", no_args_is_help=True)

FleetOption = typer.Option(Path("fleet.yaml"), "--fleet", "-f", help="Path to fleet.yaml.")


@fleet_app.command("check")
def check_cmd(
    fleet: Path = FleetOption,
    at: str | None = typer.Option(None, "--at", help="Check as of this instant (default: now)."),
    flow: bool = typer.Option(False, "--flow", help="Run the Prefect fleet flow: artifact and retrain requests too."),
    dask: str | None = typer.Option(None, "--dask", metavar="<address|local>",
                                    help="Run the fleet flow on Dask: an existing scheduler (tcp://host:8786), or "
                                    "'local' for a local cluster of 2 worker processes. Implies --flow."),
    limit: int = typer.Option(20, "--limit", help="Models listed in the table (fired and held back first)."),
    as_json: bool = JsonOption,
) -> None:
    """Check every model of the fleet, then hold back the retrains the fleet's FDR control rejects."""
    now = None if at is None else parse_instant(at, "--at")
    if flow or dask:
        from retrainer.cli.prefect_console import quiet_flow_console
        from retrainer.flows.fleet import fleet as fleet_flow
        from retrainer.flows.fleet import fleet_on_dask

        quiet_flow_console()
        if dask:
            address = None if dask == "local" else dask
            result = fleet_on_dask(fleet_path=str(fleet), now=now, address=address)
        else:
            result = fleet_flow(fleet_path=str(fleet), now=now)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        from retrainer.flows.fleet import check_fleet

        # On stderr and transient: --json output stays clean, and a finished check leaves no bar.
        progress = Progress(TextColumn("checking models"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=err_console, transient=True)
        bar = progress.add_task("check", total=None)
        with progress:
            result = check_fleet(str(fleet), now, progress=lambda done, total: progress.update(bar, completed=done,
                                                                                                 total=total))

    def render(r: dict[str, Any]) -> None:
        console.print(f"fleet [bold]{r['fleet']}[/] at {r['checked_at']}: {r['n_models']} models, "
                      f"[bold red]{r['n_fired']} retrain[/], {r['n_held_back']} held back by the fleet control "
                      f"({r['control']}, rate {r['rate']:g}, {r['n_tested']} with a p-value), {r['n_errors']} errors")
        order = {"fired": 0, "held_back": 1, "error": 2}
        shown = sorted((c for c in r["checks"] if c["outcome"] in order), key=lambda c: order[c["outcome"]])[:limit]
        for c in shown:
            p = "" if c["pvalue"] is None else f"p={c['pvalue']:.3g}"
            console.print(f"  {c['model']:<24} {c['outcome']:<10} {p:<12} {c['why'] or c['error'] or ''}")

    emit(result, as_json, render)
