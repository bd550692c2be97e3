"""``retrainer store init|upgrade|stats|compact``: the SQL store of the inference loop."""

from __future__ import annotations

from pathlib import Path

import typer

from retrainer.cli.common import ConfigOption
from retrainer.cli.output import console, emit, kv_table

store_app = typer.Typer(help="Create, upgrade and inspect the SQL store.", no_args_is_help=True)

UrlOption = typer.Option(None, "--url", help="Store URL; overrides the config (e.g. sqlite:///retrainer.db).")


def open_store(config: Path, url: str | None):
    """The store named by ``--url``, else by the config's ``store.url`` (env overrides applied)."""
    from retrainer.store import Store

    if url:
        return Store.open(url)
    from retrainer.config import load_config

    cfg = load_config(config)
    return Store.open(cfg.store.url, max_batch=cfg.store.max_batch)


@store_app.command("init")
def init(
    config: Path = ConfigOption,
    url: str | None = UrlOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create the schema at the newest revision (safe to run again)."""
    store = open_store(config, url)
    store.init()
    result = {"url": store.safe_url, "revision": store.current_revision()}
    emit(result, as_json, lambda r: console.print(f"[green]✓[/] store ready at {r['url']} (revision {r['revision']})"))


@store_app.command("upgrade")
def upgrade(
    config: Path = ConfigOption,
    url: str | None = UrlOption,
    revision: str = typer.Option("head", help="Target revision."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Upgrade an existing store's schema (Alembic migrations); data is kept."""
    store = open_store(config, url)
    before = store.current_revision()
    store.upgrade(revision)
    result = {"url": store.safe_url, "from": before, "to": store.current_revision()}
    emit(result, as_json, lambda r: console.print(f"[green]✓[/] {r['url']}: {r['from']} → {r['to']}"))


@store_app.command("stats")
def stats(
    config: Path = ConfigOption,
    url: str | None = UrlOption,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Row counts per table, predictions per model, time range, unmatched labels, label delay per model."""
    store = open_store(config, url)
    data = store.stats()

    def render(d: dict) -> None:
        flat = {k: _instant(v) if k.endswith("_ts") and v else v for k, v in d.items() if not isinstance(v, dict)}
        console.print(kv_table("store", flat))
        if "rows" in d:
            console.print(kv_table("rows", {name: f"{n:,}" for name, n in d["rows"].items()}))
        if d.get("predictions_per_model"):
            console.print(predictions_table(d["predictions_per_model"]))
        if "label_delay" in d:
            console.print(label_delay_lines(d["label_delay"]))

    emit(data, as_json, render)


def predictions_table(per_model: dict):
    """One row per model: its prediction count and time range (``Store.stats()["predictions_per_model"]``)."""
    from rich.table import Table

    table = Table(title="predictions per model", title_justify="left")
    for column in ("model", "predictions", "oldest", "newest"):
        table.add_column(column, justify="right" if column == "predictions" else "left")
    for model, d in per_model.items():
        table.add_row(model, f"{d['count']:,}", _instant(d["oldest"]), _instant(d["newest"]))
    return table


def label_delay_lines(delays: dict) -> str:
    """One line per model: how late its labels come (``Store.stats()["label_delay"]``)."""
    from datetime import timedelta

    from retrainer.durations import format_duration

    lines = ["[bold]label delay[/] (label time - prediction time, labels arrived in the lookback)"]
    for model, d in delays.items():
        if d is None or d["p50_s"] is None:
            lines.append(f"  {model}: no label has arrived yet")
            continue
        lookback = format_duration(timedelta(seconds=d["lookback_s"]))
        as_of = _instant(d["as_of"])
        labels = f"{d['n']:,} label{'s' if d['n'] != 1 else ''}"
        if d.get("n_predictions", 1):
            share = f"{d['share_labelled']:.0%} of the last {lookback}'s predictions labelled"
        else:  # a share of nothing is not 0 %: say there was nothing to label
            share = f"no prediction made in the {lookback} before {as_of}"
        line = f"  {model}: p50 {_signed(d['p50_s'])}, p95 {_signed(d['p95_s'])}, {share} ({labels}, as of {as_of})"
        if d["p50_s"] < 0 or d["p95_s"] < 0:
            # Stores written before label times were clamped to their prediction's time may hold these.
            line += ("; [yellow]labels dated before their predictions[/] (a clock or a backfill "
                     "gave them earlier times: their delay is not a real one)")
        lines.append(line)
    return "\n".join(lines)


def _signed(seconds: float) -> str:
    """A measured delay for people (``2d``, ``6h``); a negative one keeps its sign on the same scale."""
    from datetime import timedelta

    from retrainer.triggers.performance import approx_duration

    return ("-" if seconds < 0 else "") + approx_duration(timedelta(seconds=abs(seconds)))


def _instant(iso: str) -> str:
    """An ISO instant the way the other tables print it: ``2026-03-01 06:00 UTC``, or the day at midnight."""
    from datetime import datetime

    at = datetime.fromisoformat(iso)
    return at.strftime("%Y-%m-%d") if (at.hour, at.minute, at.second) == (0, 0, 0) else at.strftime("%Y-%m-%d %H:%M:%S UTC")


@store_app.command("compact")
def compact(
    config: Path = ConfigOption,
    url: str | None = UrlOption,
    model: str | None = typer.Option(None, "--model", help="Only this model (default: every model in the store)."),
    older_than: str = typer.Option("1h", "--older-than", help="Leave chunks with rows newer than this (e.g. 1h, 0s)."),
    target_rows: int = typer.Option(50_000, "--target-rows", min=2, help="Rows per merged chunk, about."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Merge small feature chunks of the inference log into big ones (window reads get faster)."""
    from datetime import datetime, timezone

    from retrainer.durations import parse_duration

    store = open_store(config, url)
    before = datetime.now(timezone.utc) - parse_duration(older_than)
    models = [model] if model else store.chunk_models()
    results = [store.compact_chunks(m, before=before, target_rows=target_rows).to_dict() for m in models]

    def render(rows: list[dict]) -> None:
        if not rows:
            console.print("no feature chunks to compact")
        for r in rows:
            console.print(
                f"[green]✓[/] {r['model']}: {r['chunks_before']:,} → {r['chunks_after']:,} chunks "
                f"({r['rows']:,} rows rewritten into {r['groups']:,} chunks"
                + (f"; {r['skipped']} groups left to a concurrent compactor" if r["skipped"] else "")
                + ")"
            )

    emit(results, as_json, render)
