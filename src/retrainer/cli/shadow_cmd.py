"""``retrainer shadow start|stop|report``: mirror traffic to a version without affecting answers."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Any

import typer

from retrainer.cli.common import ConfigOption, JsonOption
from retrainer.cli.common import actor
from retrainer.cli.common import open_config_store_registry as open_all
from retrainer.cli.output import console, emit, kv_table

shadow_app = typer.Typer(help="Shadow deployment: a version answers a copy of live traffic, silently.",
                         no_args_is_help=True)



@shadow_app.command("start")
def start(
    version: str = typer.Option(..., "--version", help="Registered version to shadow."),
    sample: float | None = typer.Option(None, "--sample", min=0.0, max=1.0,
                                        help="Share of requests mirrored (default: rollout.shadow.sample)."),
    config: Path = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Mirror live traffic to VERSION; running servers pick it up within seconds."""
    from retrainer.deployments.rollout.stages import start_shadow

    cfg, store, registry = open_all(config)
    state = start_shadow(cfg, store, registry, version=version, sample=sample, actor=actor())
    emit({"shadow_version": state.version, "champion_version": state.champion, "sample": state.sample}, as_json,
         lambda _: console.print(f"[green]✓[/] shadowing version {state.version} on {state.sample:.0%} of requests"))


@shadow_app.command("stop")
def stop(config: Path = ConfigOption, as_json: bool = JsonOption) -> None:
    """Stop mirroring traffic."""
    from retrainer.deployments.rollout.stages import stop_shadow

    cfg, store, registry = open_all(config)
    stopped = stop_shadow(cfg, store, registry, actor=actor(), reason="shadow stopped from the CLI")
    emit({"stopped": stopped}, as_json, lambda _: console.print(f"[green]✓[/] shadow of version {stopped} stopped"))


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
    no_live: bool = typer.Option(False, "--no-live", help="Stored figures only: do not ask a running server."),
    config: Path = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Agreement rate, score deltas, latency p50/p99 of both models and error rate (stored), drops (live).

    Everything but drops comes from the store, so the report works with no server running;
    drops happen before anything is stored and are only known to the running server process.
    """
    from datetime import datetime, timedelta

    from retrainer.deployments.rollout.stages import shadow_state
    from retrainer.deployments.rollout.shadow_report import summarize

    cfg, store, registry = open_all(config)
    state = shadow_state(cfg, store, registry)
    since = None if since_hours is None else datetime.now(UTC) - timedelta(hours=since_hours)
    stored = summarize(store.shadow_rows(cfg.model.name, since=since))
    live = None if no_live else _live(cfg, url)
    data = {"state": {"shadow_version": state.version, "sample": state.sample, "champion_version": state.champion},
            "stored": stored, "live": live,
            "notes": ["agreement, score deltas, latency of both models and errors are stored figures",
                      "drops (shadow queue full) are live only: counted by the running server process since it "
                      "started, never stored" + ("" if live is not None else "; no server answered, so unknown")]}

    def ms(p: dict[str, Any]) -> str | None:
        return None if p["p50"] is None else f"{p['p50']:.2f} / {p['p99']:.2f}"

    def render(d: dict[str, Any]) -> None:
        console.print(kv_table("shadow", d["state"]))
        if not d["stored"]:
            console.print("no stored shadow comparisons" + ("" if since is None else f" in the last {since_hours:g} h"))
        for version, s in d["stored"].items():
            sd = s["score_delta"] or {}
            console.print(kv_table(f"stored comparisons — shadow version {version}", {
                "requests": s["n"],
                "champion versions": ", ".join(s["champion_versions"]),
                "agreement rate": None if s["agreement_rate"] is None else f"{s['agreement_rate']:.4f}",
                "score delta mean / mean |Δ| / p99 |Δ|": " / ".join(f"{sd[k]:+.4f}" if k == "mean" else f"{sd[k]:.4f}"
                                                                    for k in ("mean", "mean_abs", "p99_abs"))
                if sd else None,
                "champion latency p50 / p99 ms": ms(s["champion_latency_ms"]),
                "shadow latency p50 / p99 ms": ms(s["shadow_latency_ms"]),
                "errors (rate)": f"{s['errors']} ({s['error_rate']:.2%})",
                "last error": s["last_error"],
                "from / to": f"{s['first']:%Y-%m-%d %H:%M} / {s['last']:%Y-%m-%d %H:%M}",
            }))
        lv = d["live"]
        if lv is None:
            console.print("drops: unknown — live only, and the server is not reachable" if not no_live else
                          "drops: live only (not asked: --no-live)")
        else:
            console.print(kv_table("live (the running server process, since it started)", {
                "isolation": lv.get("isolation"),
                "dropped (queue full)": lv["dropped"], "queue depth": lv["queue_depth"],
                "completed / errors": f"{lv['completed']} / {lv['errors']}",
                "champion latency p50 / p99 ms": ms(lv["latency_ms"]["champion"]),
                "shadow latency p50 / p99 ms": ms(lv["latency_ms"]["shadow"]),
            }))

    emit(data, as_json, render)
