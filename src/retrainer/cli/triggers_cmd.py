"""``retrainer check``, ``retrainer backtest`` and ``retrainer triggers list``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from retrainer.cli.common import ConfigOption, JsonOption, open_config_and_store, parse_instant
from retrainer.cli.common import fmt as _fmt
from retrainer.cli.output import console, emit

# The top-level ``check`` and ``backtest`` commands. Joined into the root app by retrainer.cli.
commands = typer.Typer()

triggers_app = typer.Typer(help="Inspect the installed trigger types.", no_args_is_help=True)

_STYLE = {"fired": "bold red", "ok": "green", "insufficient_data": "yellow", "error": "magenta"}


@commands.command("check")
def check(
    config: Path = ConfigOption,
    at: str | None = typer.Option(None, "--at", help="Evaluate as of this instant (default: now)."),
    no_audit: bool = typer.Option(False, "--no-audit", help="Do not write the audit rows."),
    as_json: bool = JsonOption,
) -> None:
    """Evaluate the triggers once: should the model be retrained now? Writes an audit row per trigger."""
    from rich.table import Table

    from retrainer.deployments.rollout.promotion import champion_info_for
    from retrainer.triggers.check import run_check

    cfg, store = open_config_and_store(config)
    now = parse_instant(at, "--at") if at else None
    # The one answer to "who is the champion": store first, a lagging alias repaired (MLflow is
    # imported only then, or when the store names none).
    champion = champion_info_for(cfg, store)
    result = run_check(cfg, store=store, now=now, write_audit=not no_audit, champion=champion)

    def render(_: Any) -> None:
        table = Table(title=f"check of {cfg.model.name} at {result.evaluated_at.isoformat()}", title_justify="left")
        for col in ("trigger", "status", "value", "threshold", "reason"):
            table.add_column(col, overflow="fold")
        for d in result.children:
            table.add_row(d.trigger, f"[{_STYLE[d.status]}]{d.status}[/]", _fmt(d.value), _fmt(d.threshold), d.reason)
        console.print(table)
        verdict = "[bold red]retrain[/]" if result.should_retrain else "[green]no retrain[/]"
        console.print(f"{verdict}: {result.decision.reason}")
        if result.undecided:
            console.print(f"! could not decide: {result.undecided}", markup=False)

    emit(result.to_dict(), as_json, render)
    store.close()


@commands.command("backtest")
def backtest_cmd(
    config: Path = ConfigOption,
    start: str = typer.Option(..., "--start", help="First instant (ISO-8601; UTC if no zone)."),
    end: str = typer.Option(..., "--end", help="Last instant (inclusive)."),
    every: str = typer.Option("1d", "--every", help="Step between evaluations (30d, 6h, 15m ...)."),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG of each trigger against its threshold."),
    as_json: bool = JsonOption,
) -> None:
    """Replay the policy over logged history: when would it have fired? (No audit rows written.)"""
    from rich.table import Table

    from retrainer.durations import parse_duration
    from retrainer.errors import ConfigError
    from retrainer.triggers.backtest import backtest

    try:
        step = parse_duration(every)
    except ValueError as exc:
        raise ConfigError(f"--every: {exc}") from None
    cfg, store = open_config_and_store(config)
    result = backtest(cfg, store=store, start=parse_instant(start, "--start"), end=parse_instant(end, "--end"),
                      every=step)
    data = result.to_dict()
    if plot is not None:
        from retrainer.triggers.plot import plot_backtest

        plot_backtest(result, plot)
        data["plot"] = str(plot)

    def render(_: Any) -> None:
        table = Table(title=f"backtest of {cfg.model.name}: {len(result.fires)} retrain(s)", title_justify="left")
        table.add_column("at")
        for name in result.triggers:
            table.add_column(name, justify="right")
        table.add_column("policy")
        for s in result.steps:
            cells = [f"[{_STYLE[d.status]}]{_fmt(d.value) or d.status}[/]" for d in s.children]
            verdict = "[bold red]RETRAIN[/]" if s.should_retrain else ("suppressed" if s.raw_fired else "")
            table.add_row(s.at.strftime("%Y-%m-%d %H:%M"), *cells, verdict)
        console.print(table)
        undecided = result.undecided()
        console.print(f"could not decide at {undecided.undecided} of {undecided.checks} steps ({undecided.share:.0%})")
        if undecided.flagged:
            console.print(f"! {undecided.flag('the policy')}", markup=False)
        if plot is not None:
            console.print(f"plot written to {plot}")

    emit(data, as_json, render)
    store.close()


@triggers_app.command("list")
def list_triggers(as_json: bool = JsonOption) -> None:
    """Every trigger type installed (entry points in the group retrainer.triggers) with its params."""
    from rich.table import Table

    from retrainer.triggers import available_triggers

    infos = available_triggers()
    data = [
        {
            "name": i.name,
            "class": None if i.cls is None else f"{i.cls.__module__}:{i.cls.__qualname__}",
            "distribution": i.distribution,
            "version": i.version,
            "params_schema": i.params_schema,
            "error": i.error,
        }
        for i in infos.values()
    ]

    def render(_: Any) -> None:
        table = Table(title="trigger types", title_justify="left")
        for col in ("type", "class", "distribution", "params"):
            table.add_column(col, overflow="fold")
        for row, info in zip(data, infos.values()):
            params = _defaults(info.cls) if row["error"] is None else f"[red]broken: {row['error']}[/]"
            dist = f"{row['distribution'] or '?'} {row['version'] or ''}".strip()
            table.add_row(row["name"], row["class"] or "", dist, params)
        console.print(table)

    emit(data, as_json, render)


def _defaults(cls: Any) -> str:
    """``key=default`` per line, durations as ``30d``, required keys marked."""
    from datetime import timedelta

    from retrainer.durations import format_duration

    lines = []
    for key, field in cls.Params.model_fields.items():
        if field.is_required():
            lines.append(f"{key} (required)")
            continue
        value = field.get_default(call_default_factory=True)
        lines.append(f"{key}={format_duration(value) if isinstance(value, timedelta) else value!r}")
    return "\n".join(lines)
