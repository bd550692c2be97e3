"""``retrainer ab start|status|analyze|stop``: A/B tests of the challenger against the champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from retrainer.cli.common import ConfigOption, JsonOption, actor
from retrainer.cli.common import open_config_store_registry as open_all
from retrainer.cli.output import console, emit, kv_table

ab_app = typer.Typer(help="A/B test the challenger against the champion on live traffic.", no_args_is_help=True)


def _test_dict(test: Any) -> dict[str, Any]:
    return {
        "id": test.id, "model": test.model_name, "status": test.status,
        "champion_version": test.champion_version, "challenger_version": test.challenger_version,
        "split": test.split, "salt": test.salt, "started_at": test.started_at, "stopped_at": test.stopped_at,
        "stop_reason": test.stop_reason,
    }


@ab_app.command("start")
def start(
    challenger: str = typer.Option(..., "--challenger", help="Registered version to test."),
    split: float | None = typer.Option(None, "--split", help="Share of units sent to the challenger (default: rollout.ab.split)."),
    salt: str | None = typer.Option(None, "--salt", help="Assignment salt (default: rollout.ab.salt or a fresh one)."),
    config: Path = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Start an A/B test: the champion alias vs version CHALLENGER (also set as the challenger alias)."""
    from retrainer.deployments.rollout.stages import start_ab

    cfg, store, registry = open_all(config)
    test = start_ab(cfg, store, registry, challenger=challenger, split=split, salt=salt, actor=actor())
    emit(_test_dict(test), as_json, lambda d: console.print(
        f"[green]✓[/] A/B test {d['id']} started: champion {d['champion_version']} vs challenger "
        f"{d['challenger_version']}, {d['split']:.1%} to the challenger (salt {d['salt']}); running servers "
        "pick it up within seconds"))


@ab_app.command("status")
def status(config: Path = ConfigOption, as_json: bool = JsonOption) -> None:
    """The running A/B test (or the last one) and how many units each arm has seen."""
    cfg, store, _ = open_all(config)
    name = cfg.model.name
    test = store.active_ab_test(name)
    if test is None:
        history = store.ab_tests(name)
        test = history[-1] if history else None
    if test is None:
        emit({"test": None}, as_json, lambda _: console.print(f"no A/B test for {name!r} yet"))
        return
    data = {"test": _test_dict(test), "units": store.assignment_counts(test.id),
            "max_duration_days": cfg.rollout.decision.max_duration.total_seconds() / 86400}
    emit(data, as_json, lambda d: console.print(kv_table(f"A/B test {test.id}", {**d["test"], "units": d["units"]})))


def _render_analysis(d: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"A/B test {d['ab_test_id']} — {d['model_name']}", title_justify="left")
    for col in ("arm", "version", "units", "labelled", "labelled units", "accuracy", f"gate: {d['gate_metric_name']}"):
        t.add_column(col)
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    for arm in d["arms"].values():
        t.add_row(arm["arm"], arm["version"], str(arm["units"]), str(arm["n"]), str(arm["labelled_units"]),
                  fmt(arm["accuracy"]), fmt(arm["gate_metric"]))
    console.print(t)
    dec = d["decision"]
    post = (dec.get("posterior") or {}).get("posterior") or {}
    interval = post.get("interval")
    console.print(kv_table("decision (docs/rollout.md)", {
        "accuracy diff (clustered by unit)": None if dec["diff"] is None else f"{dec['diff']:+.4f} ± {dec['se']:.4f}",
        "posterior mean": None if not post else f"{post['mean']:+.4f}",
        "95% interval": None if not interval else f"[{interval[0]:+.4f}, {interval[1]:+.4f}]",
        "P(worse by > margin)": None if not post else f"{post['p_worse_than_margin']:.3f}",
        "expected loss": None if not post else f"{post['expected_loss']:.4f}",
        "SRM p-value": None if dec["srm_p_value"] is None else f"{dec['srm_p_value']:.4g}"
        + (" [red]MISMATCH[/]" if dec["srm_mismatch"] else ""),
        "verdict": f"[bold]{d['verdict']}[/]",
        "why": dec["reason"],
    }))


@ab_app.command("analyze")
def analyze_cmd(config: Path = ConfigOption, as_json: bool = JsonOption) -> None:
    """Per-arm metrics, the difference with its 95% CI, p-value, SRM check, verdict."""
    from retrainer.deployments.rollout.analysis import analyze
    from retrainer.deployments.rollout.stages import running_ab_test

    cfg, store, _ = open_all(config)
    name = cfg.model.name
    test = store.active_ab_test(name)
    if test is None:
        history = store.ab_tests(name)
        if not history:
            running_ab_test(cfg, store)  # raises the clear error
        test = history[-1]
    emit(analyze(store, test, gate=cfg.gate, decision=cfg.rollout.decision).to_dict(), as_json, _render_analysis)


@ab_app.command("stop")
def stop(
    promote: bool = typer.Option(False, "--promote", help="Promote the challenger (compare-and-set), then stop."),
    abort: bool = typer.Option(False, "--abort", help="Stop without promoting; the champion stays."),
    force: bool = typer.Option(False, "--force", help="Promote even if the verdict is not promote_challenger."),
    reason: str | None = typer.Option(None, "--reason", help="Recorded in the ledger."),
    config: Path = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Stop the running A/B test, promoting the challenger or not."""
    from retrainer.deployments.rollout.stages import stop_ab
    from retrainer.errors import RolloutError

    if promote == abort:
        raise RolloutError("give exactly one of --promote or --abort")
    cfg, store, registry = open_all(config)
    stopped = stop_ab(cfg, store, registry, promote=promote, force=force, reason=reason, actor=actor())
    test = store.ab_test(stopped.ab_test_id)
    messages = {
        "aborted": f"[green]✓[/] A/B test {test.id} stopped; champion {test.champion_version} stays",
        "promoted": f"[green]✓[/] challenger {test.challenger_version} promoted; A/B test {test.id} stopped",
        "superseded": f"[yellow]![/] the champion moved during the test; A/B test {test.id} stopped, nothing promoted",
    }
    emit(stopped.to_dict(), as_json, lambda _: console.print(messages[stopped.status]))
    if stopped.status == "superseded":
        raise typer.Exit(1)
