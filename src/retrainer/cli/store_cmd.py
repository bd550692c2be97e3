"""``retrainer store init|upgrade|stats``: the SQL store of the inference loop."""

from __future__ import annotations

from pathlib import Path

import typer

from retrainer.cli import app
from retrainer.cli.common import ConfigOption
from retrainer.cli.output import console, emit, kv_table

store_app = typer.Typer(help="Create, upgrade and inspect the SQL store.", no_args_is_help=True)
app.add_typer(store_app, name="store")

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
    """Row counts per table, predictions per model, time range, unmatched labels."""
    store = open_store(config, url)
    data = store.stats()

    def render(d: dict) -> None:
        flat = {k: v for k, v in d.items() if not isinstance(v, dict)}
        console.print(kv_table("store", flat))
        for key, value in d.items():
            if isinstance(value, dict):
                console.print(kv_table(key, value))

    emit(data, as_json, render)
