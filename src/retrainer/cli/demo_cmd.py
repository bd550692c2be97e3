"""``retrainer demo``: the whole loop from nothing, on embedded defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from retrainer.cli.common import JsonOption
from retrainer.cli.output import console, emit


# The top-level ``demo`` command. Joined into the root app by retrainer.cli.
commands = typer.Typer()


@commands.command("demo")
def demo(
    workdir: Path = typer.Option(Path("demo-out"), "--workdir", help="Where the demo writes everything."),
    days: int = typer.Option(40, help="Days in the simulated stream."),
    rows_per_day: int = typer.Option(200, help="Requests per simulated day (50 or more); the demo sizes its windows from it."),
    drift_day: int = typer.Option(22, help="The day the data starts to drift."),
    as_json: bool = JsonOption,
) -> None:
    """Simulate a model in production: traffic, late labels, drift, retrain, paired shadow, promotion."""
    import os

    # The story is told by the progress bars and the summary; Prefect's per-run INFO lines and its
    # telemetry (no network here) would drown it.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from retrainer.cli.prefect_console import quiet_flow_console
    from retrainer.demo.report import posterior_lines
    from retrainer.demo.runner import DemoSpec, run_demo

    spec = DemoSpec(days=days, rows_per_day=rows_per_day, drift_day=drift_day)
    spec.sizing()  # a story that cannot be told is refused here, in one line, before anything starts
    quiet_flow_console()  # an expected failure inside a flow is the CLI's one line, not Prefect's traceback
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console if not as_json else None, transient=as_json, disable=as_json)
    tasks: dict[str, Any] = {}

    def step(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=total)
        progress.update(tasks[label], completed=done, total=total)

    with progress:
        result = run_demo(workdir, spec, progress=step)
    summary = demo_summary(result)

    def render(s: dict[str, Any]) -> None:
        console.print(f"\n[bold]retrainer demo[/] — {s['days_simulated']} days simulated at {s['rows_per_day']} requests "
                      f"a day, drift from day {s['drift_day']}")
        z = s["sizing"]
        console.print(f"  sized for that traffic: training window {z['train_days']}d (min_rows {z['min_rows']}), "
                      f"drift/estimate windows {z['drift_days']}d, performance {z['performance_days']}d; "
                      "rollouts: a paired shadow decided by the posterior (rollout.mode auto)")
        for label, fired in s["trigger_fires"].items():
            console.print(f"  {label:<12} fired on days {fired or 'never'}")
        console.print(f"  versions registered: {s['versions_registered']}; promoted: {s['versions_promoted']}")
        for r in s["rollouts"]:
            stages = " -> ".join(f"{st['stage']} day {st['day']}" for st in r["stages"])
            console.print(f"  rollout {r['id']}: version {r['version']} vs champion {r['champion']}: {stages}")
            for line in posterior_lines(r):
                console.print(f"    {line}")
        for name, path in s["reports"].items():
            console.print(f"  {name}: {path}")

    emit(summary, as_json, render)


def demo_summary(result: Any) -> dict[str, Any]:
    from dataclasses import asdict

    from retrainer.demo.report import lead_time
    from retrainer.store import Store

    with Store.open(f"sqlite:///{result.workdir.resolve() / 'retrainer.db'}") as store:
        ledger = store.ledger(_model_name(result))
    return {
        "workdir": str(result.workdir),
        "days_simulated": result.spec.days - result.spec.history_days,
        "drift_day": result.spec.drift_day,
        "rows_per_day": result.spec.rows_per_day,
        # What the demo's retrainer.yaml sized from the traffic (windows in days).
        "sizing": asdict(result.spec.sizing()),
        "trigger_fires": result.fires(),
        "retrains": [{**{k: r.get(k) for k in ("day", "status", "version", "reasons")}, "training_rows": _rows(r)}
                     for r in result.retrains],
        "versions_registered": [r["version"] for r in result.retrains if r.get("version")],
        "versions_promoted": [e.to_version for e in ledger if e.action == "promote"],
        # Each rollout's stages with their dates and demo days, and its posterior trail (one look a
        # day: mean, 95% interval, P(worse than the margin), expected loss, pair counts); every
        # promotion and rollback.
        "rollouts": result.rollouts,
        "champion_moves": result.champion_moves,
        # The day the label-free estimate crossed vs the day matured labels confirmed it.
        "lead_time": lead_time(result),
        "ledger": [{"action": e.action, "from": e.from_version, "to": e.to_version, "at": e.at.isoformat()} for e in ledger],
        "reports": result.reports,
    }


def _rows(retrain: dict[str, Any]) -> int | None:
    """Labelled rows the run loaded (training + holdout); None when it failed before loading."""
    data = retrain.get("data") or {}
    return data["train_samples"] + data["holdout_samples"] if "train_samples" in data else None


def _model_name(result: Any) -> str:
    from retrainer.config import load_config

    return load_config(result.config_path).model.name
