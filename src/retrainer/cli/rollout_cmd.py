"""``retrainer rollout status|advance|abort|plan``: the rollout flow's state, one step by hand, a stop, or the forecast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from retrainer.cli.common import ConfigOption, JsonOption, actor, parse_instant
from retrainer.cli.common import open_config_store_registry as open_all
from retrainer.cli.output import console, emit, kv_table

rollout_app = typer.Typer(help="Challengers graduating shadow -> A/B -> champion on evidence.", no_args_is_help=True)


def _render_status(d: dict[str, Any]) -> None:
    if not d["rollouts"]:
        console.print(f"no rollout of {d['model']!r} yet")
        return
    from rich.table import Table

    from retrainer.deployments.rollout.posterior import summary_line

    t = Table(title=f"rollouts of {d['model']}", title_justify="left")
    for col in ("id", "version", "vs champion", "stage", "since", "stages", "posterior (delta)", "last decision"):
        t.add_column(col)
    for r in d["rollouts"]:
        stages = " -> ".join(f"{s['stage']} {s['at'][:16]}" for s in r["stages"])
        t.add_row(str(r["id"]), r["version"], str(r["champion"]), r["stage"], r["stage_started_at"][:19], stages,
                  summary_line(r["evidence"]) or "-", f"{r['decision']}: {r['explanation']}")
    console.print(t)


def _with_posterior(r: dict[str, Any]) -> dict[str, Any]:
    """The rollout with its last look's posterior lifted out of the evidence (docs/rollout.md):
    mean, 95% interval, P(worse by more than the margin), expected loss, pair counts, and the
    trail of one look a day."""
    ev = r.get("evidence") or {}
    post = ev.get("posterior") if isinstance(ev.get("posterior"), dict) and "interval" in ev["posterior"] else None
    r["posterior"] = None if post is None else {
        **post, "n_labelled": ev.get("n_labelled"), "n_unlabelled": ev.get("n_unlabelled"),
        "prior": ev.get("prior"), "action": ev.get("action")}
    r["trail"] = ev.get("trail") or []
    return r


@rollout_app.command("status")
def status(config: Path = ConfigOption, as_json: bool = JsonOption) -> None:
    """Every rollout of the model (oldest first): stage, stages with dates, the last decision."""
    cfg, store, _ = open_all(config)
    rollouts = [_with_posterior(r.to_dict()) for r in store.rollouts(cfg.model.name)]
    in_flight = next((r for r in rollouts if r["stage"] in ("staged", "shadow", "ab")), None)
    emit({"model": cfg.model.name, "in_flight": in_flight, "rollouts": rollouts}, as_json, _render_status)


def _render_step(d: dict[str, Any]) -> None:
    rows = {"action": f"[bold]{d['action']}[/]", "why": d["explanation"], "rollout": d["rollout_id"],
            "version": d["version"], "stage": f"{d['stage_before'] or '-'} -> {d['stage'] or '-'}"}
    rows.update({f"waiting for ({i + 1})": w for i, w in enumerate(d["waiting_for"])})
    console.print(kv_table(f"rollout of {d['model']}", rows))


@rollout_app.command("advance")
def advance_cmd(
    config: Path = ConfigOption,
    at: str | None = typer.Option(None, "--at", help="Judge the evidence as of this instant (default: now)."),
    as_json: bool = JsonOption,
) -> None:
    """Advance the rollout one step now (what the rollout flow does every 15 minutes)."""
    from datetime import datetime, timezone

    from retrainer.deployments.rollout.advance import advance

    now = parse_instant(at, "--at") if at else datetime.now(timezone.utc)
    cfg, store, registry = open_all(config)
    with store:
        step = advance(cfg, store, registry, now, actor=actor())
    emit(step.to_dict(), as_json, _render_step)


@rollout_app.command("abort")
def abort_cmd(
    reason: str = typer.Option("aborted by hand", "--reason", help="Recorded in the ledger."),
    config: Path = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """Stop the rollout in flight: shadow off, A/B test aborted, challenger unstaged; the champion stays."""
    from datetime import datetime, timezone

    from retrainer.deployments.rollout.advance import abort

    cfg, store, registry = open_all(config)
    with store:
        step = abort(cfg, store, registry, datetime.now(timezone.utc), reason=reason, actor=actor())
    emit(step.to_dict(), as_json, _render_step)


def _render_plan(d: dict[str, Any]) -> None:
    p, m = d["plan"], d["measured"]
    t = p["traffic"]
    days = p["expected_days"]
    verdict = (f"[bold green]day {days}[/]" if days is not None
               else f"[bold yellow]not within {p['max_duration_days']:g} days[/]")
    rows: dict[str, Any] = {
        "challenger": f"{d['version'] or '-'} vs champion {d['champion'] or '-'}",
        "mode": f"[bold]{p['mode']}[/]: {p['mode_reason']}",
        "requests a day": f"{t['requests_per_day']:,.1f} (over {t['measured_over_days']:.1f} days to {d['as_of'][:16]})",
        "label rate": f"{t['label_rate']:.1%} ({m['label_rate_basis']})",
        "label delay": "no label arrived in the lookback" if m["label_delay_p50_days"] is None
        else f"p50 {m['label_delay_p50_days']:.1f}d, p95 {m['label_delay_p95_days']:.1f}d",
        "disagreement": f"{t['disagreement']:.1%} ({t['disagreement_source']})",
    }
    if p["mode"] == "ab":
        rows["champion accuracy"] = f"{t['champion_accuracy']:.3f} ({t['accuracy_source']})"
    if p["mode"] != "direct":
        rows["traffic share"] = f"{p['share']:.0%} ({p['share_key']})"
        rows["pairs a day"] = (f"{p['labelled_pairs_per_day']:,.1f} labelled"
                               + (f", {p['unlabelled_pairs_per_day']:,.1f} shadowed" if p["mode"] == "shadow" else ""))
        prior = p["prior"]
        rows["prior Δ"] = f"{prior['mean']:+.4f} ± {prior['sd']:.4f} ({prior['source']})"
        rule = p["rule"]
        rows["rule"] = (f"promote when P(Δ < -{rule['margin']:g}) <= {rule['p_worse_max']:g} and expected loss <= "
                        f"{rule['max_expected_loss']:g}; reject when P(Δ < 0) >= {rule['p_harm_reject']:g}; either "
                        f"after {rule.get('min_labelled', 0):,} labelled pairs")
        rows["decision expected"] = verdict
        spread = p["spread"]
        if spread is not None:
            def by(q: str) -> str:
                return f"by day {spread[q]}" if spread[q] is not None else "not within max_duration"

            rows["simulated rollouts"] = (f"10% decided {by('p10')}, 90% {by('p90')}; {spread['decided']:.0%} "
                                          f"decide in time, {spread['promoted']:.0%} promote")
        ev = p["evidence_day"]
        rows["on the expected evidence"] = f"day {ev}" if ev is not None else "not within max_duration"
        nb = p["days_if_no_better"]
        rows["if no better (Δ = 0)"] = f"day {nb}" if nb is not None else "not within max_duration"
    rows["summary"] = p["summary"]
    for i, alt in enumerate(p["alternatives"]):
        rows[f"would change it ({i + 1})"] = alt["change"]
    console.print(kv_table(f"rollout plan for {d['model']}", rows))


@rollout_app.command("plan")
def plan_cmd(
    config: Path = ConfigOption,
    version: str | None = typer.Option(
        None, "--version", help="The challenger to plan for (default: the rollout in flight or queued, else the "
        "newest version a retrain registered)."),
    at: str | None = typer.Option(None, "--at", help="Measure the traffic as of this instant (default: now)."),
    lookback: str = typer.Option("14d", "--lookback", help="How much recent traffic to measure (e.g. 14d, 36h)."),
    as_json: bool = JsonOption,
) -> None:
    """Forecast a rollout from the measured traffic: mode, pairs a day, the day the rule should decide, what would speed it.

    The day is the median of simulated rollouts through the decision rule at the store's measured
    request rate, label rate, label delay and disagreement; past rollout.decision.max_duration it
    says what would change that (traffic share, margin, a longer max_duration), with numbers."""
    from datetime import datetime, timezone

    from retrainer.cli.common import open_config_and_store
    from retrainer.deployments.rollout.plan import plan_for
    from retrainer.durations import parse_duration
    from retrainer.errors import ConfigError

    try:
        window = parse_duration(lookback)
    except ValueError as exc:
        raise ConfigError(f"--lookback: {exc}") from None
    if window.total_seconds() <= 0:
        raise ConfigError(f"--lookback {lookback!r} must be longer than zero")
    now = parse_instant(at, "--at") if at else datetime.now(timezone.utc)
    cfg, store = open_config_and_store(config)
    with store:
        plan, context = plan_for(cfg, store, as_of=now, version=version, lookback=window)
    emit({**context, "plan": plan.to_dict()}, as_json, _render_plan)
