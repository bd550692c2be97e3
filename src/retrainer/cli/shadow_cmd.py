"""``retrainer shadow start|stop|report``: mirror traffic to a version without affecting answers."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import typer

from retrainer.cli import app
from retrainer.cli.common import ConfigOption, JsonOption
from retrainer.cli.common import actor
from retrainer.cli.common import open_config_store_registry as open_all
from retrainer.cli.output import console, emit, kv_table

shadow_app = typer.Typer(help="Shadow deployment: a version answers a copy of live traffic, silently.",
                         no_args_is_help=True)
app.add_typer(shadow_app, name="shadow")



def _state(cfg: Any, store: Any, registry: Any) -> tuple[str | None, float, str | None]:
    from retrainer.deployments.shadow import shadow_target
    from retrainer.registry import CHALLENGER, CHAMPION

    version, sample = shadow_target(store.ledger(cfg.model.name), rollout_mode=cfg.rollout.mode,
                                    challenger=registry.alias_version(CHALLENGER),
                                    default_sample=cfg.rollout.shadow.sample)
    return version, sample, store.champion(cfg.model.name) or registry.alias_version(CHAMPION)


@shadow_app.command("start")
def start(
    version: str = typer.Option(..., "--version", help="Registered version to shadow."),
    sample: float | None = typer.Option(None, "--sample", min=0.0, max=1.0,
                                        help="Share of requests mirrored (default: rollout.shadow.sample)."),
    config: Path = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Mirror live traffic to VERSION; running servers pick it up within seconds."""
    from retrainer.deployments.shadow import shadow_reason
    from retrainer.errors import RolloutError

    cfg, store, registry = open_all(config)
    v = str(registry.get_version(version).version)
    _, _, champion = _state(cfg, store, registry)
    if v == champion:
        raise RolloutError(f"version {v} is the champion: shadow a different version")
    if sample is not None and sample <= 0:
        raise RolloutError("--sample must be above 0")
    store.append_ledger(cfg.model.name, action="shadow_start", from_version=champion, to_version=v, actor=actor(),
                        reason=shadow_reason(f"shadow {v} against champion {champion}", sample))
    eff = sample if sample is not None else cfg.rollout.shadow.sample
    emit({"shadow_version": v, "champion_version": champion, "sample": eff}, as_json,
         lambda _: console.print(f"[green]✓[/] shadowing version {v} on {eff:.0%} of requests"))


@shadow_app.command("stop")
def stop(config: Path = ConfigOption, as_json: bool = JsonOption) -> None:
    """Stop mirroring traffic."""
    from retrainer.errors import RolloutError

    cfg, store, registry = open_all(config)
    current, _, champion = _state(cfg, store, registry)
    if current is None:
        raise RolloutError(f"no shadow deployment is running for {cfg.model.name!r}")
    store.append_ledger(cfg.model.name, action="shadow_stop", from_version=champion, to_version=current,
                        actor=actor(), reason=f"shadow {current} stopped from the CLI")
    emit({"stopped": current}, as_json, lambda _: console.print(f"[green]✓[/] shadow of version {current} stopped"))


def _live(cfg: Any, url: str | None) -> dict[str, Any] | None:
    import httpx

    base = url or f"http://{cfg.serving.host}:{cfg.serving.port}"
    headers = {"Authorization": f"Bearer {cfg.serving.api_token}"} if cfg.serving.api_token else {}
    try:
        r = httpx.get(base.rstrip("/") + "/admin/status", headers=headers, timeout=2.0)
        r.raise_for_status()
        return r.json().get("shadow")
    except Exception:  # noqa: BLE001 - the server may simply not be running
        return None


@shadow_app.command("report")
def report(
    since_hours: float | None = typer.Option(None, "--since-hours", help="Only comparisons this recent."),
    url: str | None = typer.Option(None, "--url", help="Running server for live figures (default: serving.host:port)."),
    config: Path = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Agreement rate, score deltas, latency p50/p99 of both models, error rate, drops."""
    from datetime import datetime, timedelta

    from retrainer.deployments.shadow import summarize

    cfg, store, registry = open_all(config)
    current, sample, champion = _state(cfg, store, registry)
    since = None if since_hours is None else datetime.now(UTC) - timedelta(hours=since_hours)
    stored = summarize(store.shadow_rows(cfg.model.name, since=since))
    live = _live(cfg, url)
    data = {"state": {"shadow_version": current, "sample": sample, "champion_version": champion},
            "stored": stored, "live": live,
            "notes": ["champion latency, errors and drops are live figures of the running server (not stored)"]}

    def render(d: dict[str, Any]) -> None:
        console.print(kv_table("shadow", d["state"]))
        for version, s in d["stored"].items():
            sd = s["score_delta"] or {}
            console.print(kv_table(f"stored comparisons — shadow version {version}", {
                "comparisons": s["n"], "agreement rate": f"{s['agreement_rate']:.4f}",
                "score delta mean / mean |Δ| / p99 |Δ|": " / ".join(f"{sd[k]:.4f}" for k in ("mean", "mean_abs", "p99_abs"))
                if sd else None,
                "shadow latency p50 / p99 ms": f"{s['shadow_latency_ms']['p50']} / {s['shadow_latency_ms']['p99']}",
            }))
        if d["live"] is None:
            console.print("live figures: server not reachable")
        else:
            lv = d["live"]
            console.print(kv_table("live (this server process)", {
                "completed": lv["completed"], "errors": lv["errors"], "error rate": lv["error_rate"],
                "dropped": lv["dropped"], "agreement rate": lv["agreement_rate"],
                "champion latency p50 / p99 ms": f"{lv['latency_ms']['champion']['p50']} / {lv['latency_ms']['champion']['p99']}",
                "shadow latency p50 / p99 ms": f"{lv['latency_ms']['shadow']['p50']} / {lv['latency_ms']['shadow']['p99']}",
            }))

    emit(data, as_json, render)
