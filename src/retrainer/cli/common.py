"""Options and helpers every command shares, so each is written once."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from retrainer.config import RetrainerConfig
    from retrainer.registry import Registry
    from retrainer.store import Store

ConfigOption = typer.Option(Path("retrainer.yaml"), "--config", "-c", help="Path to retrainer.yaml.")
JsonOption = typer.Option(False, "--json", help="Print JSON instead of a table.")


def parse_instant(value: str, what: str) -> datetime:
    """ISO-8601 (``2026-02-01``, ``2026-02-01T06:00Z``); no time zone means UTC."""
    from retrainer.errors import ConfigError

    try:
        at = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not an ISO-8601 date or datetime (e.g. 2026-02-01T06:00Z)") from None
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


def open_config_and_store(config: Path) -> tuple[RetrainerConfig, Store]:
    """The validated config and its store (schema checked: a clear error says to upgrade)."""
    from retrainer.config import load_config
    from retrainer.store import Store

    cfg = load_config(config)
    return cfg, Store.from_config(cfg)


def open_config_store_registry(config: Path) -> tuple[RetrainerConfig, Store, Registry]:
    """(config, store, registry) for commands that move models."""
    from retrainer.registry import Registry

    cfg, store = open_config_and_store(config)
    return cfg, store, Registry.from_config(cfg)


def actor() -> str:
    """Who did it, for the ledger: ``cli:<user>``."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no user name in some containers
        return "cli"


def fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
