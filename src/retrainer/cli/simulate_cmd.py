"""``retrainer simulate``: what would each retraining policy have done, and cost, on past data?"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from retrainer.cli.common import ConfigOption, JsonOption, parse_instant
from retrainer.cli.output import console, emit, err_console

# The top-level ``simulate`` command. Joined into the root app by retrainer.cli.
commands = typer.Typer()


def _duration(value: str | None, flag: str) -> Any:
    from retrainer.durations import parse_duration
    from retrainer.errors import ConfigError

    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _check_output(path: Path | None, flag: str) -> None:
    """Fail before hours of replay, not after, when an output cannot be written."""
    from retrainer.errors import ConfigError

    if path is not None and not path.resolve().parent.is_dir():
        raise ConfigError(f"{flag} {str(path)!r}: the folder {str(path.resolve().parent)!r} does not exist")


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, renamed at the end: a failure leaves no file."""
    fd, tmp = tempfile.mkstemp(dir=path.resolve().parent, prefix=f".{path.name}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _measured_label_delay(cfg: Any) -> tuple[Any, str]:
    """The store's median label delay over the last 30 days, or 0 when there is no store to ask.

    A SQLite store that does not exist is not created (no empty file left behind)."""
    from datetime import datetime, timedelta, timezone

    import sqlalchemy as sa

    from retrainer.errors import RetrainerError
    from retrainer.store import Store

    url = sa.engine.make_url(cfg.store.url)
    if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).is_file()):
        return timedelta(0), "0s (no store to measure it)"
    try:
        with Store.from_config(cfg) as store:
            delay = store.label_delay(cfg.model.name, as_of=datetime.now(timezone.utc))
    except (RetrainerError, sa.exc.SQLAlchemyError):
        return timedelta(0), "0s (the store could not be read)"
    if delay.p50 is None:
        return timedelta(0), "0s (no label arrived in the store in the last 30 days)"
    return delay.p50, f"the store's median over {delay.n} labels of the last 30 days"


@commands.command("simulate")
def simulate_cmd(
    config: Path = ConfigOption,
    start: str = typer.Option(..., "--start", help="First step (ISO-8601; UTC if no zone)."),
    end: str = typer.Option(..., "--end", help="End of the replay (exclusive)."),
    every: str = typer.Option("7d", "--every", help="Step: the policy is checked at the start of each."),
    policy: str = typer.Option("configured", "--policy", help="The policy of interest (a spec, see --compare)."),
    compare: str = typer.Option(
        "never,periodic:30d,periodic:90d,always,oracle", "--compare",
        help="Comma-separated specs: configured, never, always, periodic:30d, oracle, TYPE[:k=v;k=v], @file.yaml.",
    ),
    retrain_cost: float = typer.Option(100.0, "--retrain-cost", help="Cost of one retrain."),
    error_cost: float = typer.Option(1.0, "--error-cost", help="Cost of one wrong prediction."),
    label_delay: str | None = typer.Option(
        None, "--label-delay", help="Labels arrive this long after the event (default: the store's median, or 0)."
    ),
    train_window: str | None = typer.Option(None, "--train-window", help="Trailing training window (default: data.window)."),
    retrain_duration: str | None = typer.Option(
        None, "--retrain-duration", help="Duration each simulated retrain records (cost_benefit's cost_per_hour)."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Write a PNG: realized metric per policy, retrain marks."),
    report: Path | None = typer.Option(None, "--report", help="Write a markdown report."),
    as_json: bool = JsonOption,
) -> None:
    """Replay retraining policies over the data source's history: retrains, realized metric, cost, regret vs the oracle."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from retrainer.config import load_config
    from retrainer.simulate import Costs, History, SimulationSettings, simulate, split_specs
    from retrainer.simulate.plot import plot_simulation
    from retrainer.simulate.report import markdown_report, rich_table, undecided_flags
    from retrainer.tasks.load import read_source_history

    _check_output(plot, "--plot")
    _check_output(report, "--report")
    duration = _duration(retrain_duration, "--retrain-duration")
    cfg = load_config(config)
    delay = _duration(label_delay, "--label-delay")
    delay, delay_source = (delay, "--label-delay") if delay is not None else _measured_label_delay(cfg)
    settings = SimulationSettings(
        start=parse_instant(start, "--start"),
        end=parse_instant(end, "--end"),
        every=_duration(every, "--every"),
        policies=[*split_specs(policy), *split_specs(compare)],
        costs=Costs(retrain_cost=retrain_cost, error_cost=error_cost),
        label_delay=delay,
        train_window=_duration(train_window, "--train-window"),
        retrain_duration_s=None if duration is None else duration.total_seconds(),
    )
    history = History.from_frame(read_source_history(cfg.data, end=settings.end), cfg.data,
                                 label_delay=settings.label_delay)
    progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, transient=True)
    bars: dict[str, Any] = {}

    def step(name: str, done: int, total: int) -> None:
        if name not in bars:
            bars[name] = progress.add_task(name[:28], total=total)
        progress.update(bars[name], completed=done)

    with progress:
        result = simulate(cfg, history, settings, progress=step)
    data = result.to_dict()
    data["settings"]["label_delay_from"] = delay_source
    if plot is not None:
        _write_atomically(plot, lambda p: plot_simulation(result, p))
        data["plot"] = str(plot)
    if report is not None:
        text = markdown_report(result, plot=None if plot is None else os.path.relpath(plot.resolve(), report.resolve().parent))
        _write_atomically(report, lambda p: p.write_text(text, encoding="utf-8"))
        data["report"] = str(report)

    def render(_: Any) -> None:
        console.print(rich_table(result))
        for line in undecided_flags(result):
            console.print(line, markup=False)
        if result.oracle is not None:
            when = ", ".join(result.grid.instants[k].date().isoformat() for k in result.oracle.retrain_steps)
            console.print(f"oracle retrains at: {when or 'never'}")
        console.print(f"models trained: {result.cache.trained} (shared by every policy)")
        for key in ("plot", "report"):
            if key in data:
                console.print(f"{key} written to {data[key]}")

    emit(data, as_json, render)
