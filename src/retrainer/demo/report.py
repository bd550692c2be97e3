"""The demo's report: an Evidently drift report, a timeline PNG, and a markdown summary."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from retrainer.config import RetrainerConfig
from retrainer.demo.data import FEATURES


def write_report(result: Any, stream: pd.DataFrame, cfg: RetrainerConfig) -> dict[str, str]:
    out = result.workdir / "report"
    out.mkdir(exist_ok=True)
    paths = {
        "drift_report": out / "drift_report.html",
        "timeline": out / "timeline.png",
        "summary": out / "summary.md",
    }
    drift_window = _drift_window(result, stream)
    write_drift_report(stream, drift_window, result.spec.history_days, paths["drift_report"])
    plot_timeline(result, paths["timeline"], trigger_kinds(cfg), margin=cfg.rollout.decision.margin)
    paths["summary"].write_text(summary_markdown(result, drift_window, lead_time(result, cfg)), encoding="utf-8")
    return {k: str(v) for k, v in paths.items()}


def trigger_kinds(cfg: RetrainerConfig) -> dict[str, str]:
    """Trigger label (as the checks name it) -> its type."""
    return {t.name or t.type: t.type for t in cfg.triggers}


def lead_time(result: Any, cfg: RetrainerConfig | None = None) -> dict[str, Any]:
    """The day the label-free estimate first crossed its line, the first day on or after it
    that matured labels confirmed it (``performance`` fired), and the days between: how much
    earlier the estimate told. None where it did not happen (or the policy lacks the trigger)."""
    if cfg is None:
        from retrainer.config import load_config

        cfg = load_config(result.config_path)
    kinds = trigger_kinds(cfg)

    def first(kind: str, since: int | None = None) -> int | None:
        labels = [label for label, k in kinds.items() if k == kind]
        days = [day for label in labels for day in result.fires().get(label, []) if since is None or day >= since]
        return min(days, default=None)

    crossed = first("estimated_performance")
    confirmed = first("performance", crossed)
    return {"estimate_crossed_day": crossed, "labels_confirmed_day": confirmed,
            "lead_days": None if crossed is None or confirmed is None else confirmed - crossed}


def _drift_window(result: Any, stream: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The days that made drift fire first (else the last three days): what the report compares."""
    fired = [d for d in result.days if d.monitor["checks"].get("drift", {}).get("fired")]
    end = pd.Timestamp(fired[0].at if fired else stream["ts"].max())
    return end - pd.Timedelta(days=3), end


def write_drift_report(stream: pd.DataFrame, window: tuple[pd.Timestamp, pd.Timestamp], history_days: int,
                       path: Path) -> None:
    """Evidently's data drift preset: the first model's training data against the drift window."""
    from retrainer.tasks.report import evidently_drift_report

    names = [f.name for f in FEATURES]
    start = stream["ts"].min()
    reference = stream.loc[stream["ts"] < start + pd.Timedelta(days=history_days), names]
    current = stream.loc[(stream["ts"] >= window[0]) & (stream["ts"] < window[1]), names]
    evidently_drift_report(reference, current, path)


# How the timeline marks the champion's moves (retrains are the backtest plot's red lines).
CHAMPION_MARKS = {"promote": ("tab:green", "-", "promotion"), "rollback": ("black", ":", "rollback")}


def plot_timeline(result: Any, path: Path, kinds: dict[str, str] | None = None, *, margin: float | None = None) -> None:
    """Each trigger's statistic against its threshold, day by day, with the retrain points and the
    promotions / rollbacks; estimated and realized performance share one panel (``kinds``: trigger
    label -> type); below them each rollout's posterior of challenger − champion by day
    (:func:`draw_posteriors`)."""
    from retrainer.triggers.backtest import BacktestResult, BacktestStep
    from retrainer.triggers.decision import Decision

    retrain_days = {r["day"] for r in result.retrains[1:]}
    steps = []
    for d in result.days:
        children = tuple(
            Decision(trigger=label, fired=c["fired"], status=c["status"], reason=c["reason"] or "",
                     value=c["value"], threshold=c["threshold"], evidence=c.get("evidence") or {})
            for label, c in d.monitor["checks"].items()
        )
        policy = Decision(trigger="policy", fired=d.day in retrain_days,
                          status="fired" if d.day in retrain_days else "ok", reason="")
        steps.append(BacktestStep(at=d.at, should_retrain=d.day in retrain_days, raw_fired=d.monitor["should_retrain"],
                                  last_retrain_at=None, decision=policy, children=children))
    timeline = BacktestResult(model_name=result.config_path.parent.name, start=result.days[0].at,
                              end=result.days[-1].at, every=timedelta(days=1), steps=tuple(steps),
                              kinds=dict(kinds or {}))
    from retrainer.triggers.plot import plot_backtest

    drift_day = result.spec.drift_day
    rollouts = [r for r in getattr(result, "rollouts", []) if r.get("trail")]
    panels = [(POSTERIOR_PANEL, lambda ax: draw_posteriors(ax, rollouts, margin))] if rollouts else []
    fig = plot_backtest(timeline, title=f"retrainer demo: trigger statistics per day (drift begins on day {drift_day}); "
                                        "red lines = retrains, green = promotions, black dotted = rollbacks",
                        extra_panels=panels)
    moves = [m for m in getattr(result, "champion_moves", []) if m["action"] in CHAMPION_MARKS
             and result.days and result.days[0].at <= pd.Timestamp(m["at"]).to_pydatetime() <= result.days[-1].at]
    for ax in fig.axes:
        for m in moves:
            color, style, _ = CHAMPION_MARKS[m["action"]]
            ax.axvline(pd.Timestamp(m["at"]).to_pydatetime(), color=color, ls=style, lw=1.8, alpha=0.8)
    if moves and fig.axes:
        from matplotlib.lines import Line2D

        shown = dict.fromkeys(m["action"] for m in moves)
        fig.axes[-1 - len(panels)].legend(handles=[Line2D([], [], color=CHAMPION_MARKS[a][0], ls=CHAMPION_MARKS[a][1],
                                            label=f"{CHAMPION_MARKS[a][2]}") for a in shown],
                            loc="lower left", fontsize=7, frameon=False)
    fig.savefig(path, dpi=110)


POSTERIOR_PANEL = "posterior of\nΔ = challenger\n− champion"


def draw_posteriors(ax: Any, rollouts: list[dict[str, Any]], margin: float | None) -> None:
    """Each rollout's posterior of Δ = challenger − champion, one look a day: the mean as a line,
    its 95% interval as a band, with 0 and −margin (the non-inferiority line) marked."""
    for i, r in enumerate(rollouts):
        trail = [t for t in r["trail"] if t.get("mean") is not None]
        if not trail:
            continue
        at = [pd.Timestamp(t["at"]).to_pydatetime() for t in trail]
        color = f"C{i % 10}"
        ax.plot(at, [t["mean"] for t in trail], color=color, marker="o", ms=3, lw=1.6,
                label=f"version {r['version']} vs {r['champion']}")
        ax.fill_between(at, [t["interval"][0] for t in trail], [t["interval"][1] for t in trail], color=color,
                        alpha=0.2, lw=0)
    ax.axhline(0.0, color="tab:gray", lw=1)
    if margin is not None:
        ax.axhline(-margin, color="tab:gray", ls="--", lw=1, label=f"−margin ({margin:g})")
    ax.legend(loc="upper left", fontsize=7, ncols=4, frameon=False, title="mean, band = 95% interval",
              title_fontsize=7)


def posterior_lines(rollout: dict[str, Any]) -> list[str]:
    """A rollout's posterior trail, one line a day, for the console."""
    return [f"day {t['day']} {t['stage']}: delta {t['mean']:+.4f} [{t['interval'][0]:+.4f}, {t['interval'][1]:+.4f}], "
            f"P(worse than margin) {t['p_worse_than_margin']:.3f}, expected loss {t['expected_loss']:.5f}, "
            f"{t.get('n_labelled') or 0} labelled + {t.get('n_unlabelled') or 0} label-free pairs: {t.get('action') or ''}"
            for t in rollout.get("trail") or [] if t.get("mean") is not None]


def posterior_table(rollout: dict[str, Any]) -> list[str]:
    """A rollout's posterior trail as a markdown table: one look a day (docs/rollout.md)."""
    lines = [f"Rollout {rollout['id']}, version {rollout['version']} against champion {rollout['champion']} "
             f"(stage at the end of the demo: {rollout['stage']}):", "",
             "| day | stage | Δ mean | 95% interval | P(Δ < −margin) | expected loss | labelled pairs | label-free pairs | look |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in rollout.get("trail") or []:
        if t.get("mean") is None:
            continue
        lo, hi = t["interval"]
        lines.append(f"| {t['day']} | {t['stage']} | {t['mean']:+.4f} | [{lo:+.4f}, {hi:+.4f}] | "
                     f"{t['p_worse_than_margin']:.3f} | {t['expected_loss']:.5f} | {t.get('n_labelled') or 0} | "
                     f"{t.get('n_unlabelled') or 0} | {t.get('action') or ''} |")
    return lines


def _lead_lines(lead: dict[str, Any]) -> list[str]:
    crossed, confirmed, days = lead["estimate_crossed_day"], lead["labels_confirmed_day"], lead["lead_days"]
    if crossed is None:
        seen = "" if confirmed is None else f"; matured labels (`performance`) fired on **day {confirmed}**"
        return [f"The label-free estimate (`estimated_performance`) never crossed its line{seen}. The estimate "
                "sees covariate shift only (P(y | x) unchanged, scores calibrated); a drift that changes what the "
                "same inputs mean (concept drift) is invisible to the model's own scores, and only labels reveal it."]
    if confirmed is None:
        return [f"The label-free estimate crossed its line on **day {crossed}**; matured labels "
                "(`performance`) had not confirmed it by the end."]
    return [f"The label-free estimate crossed its line on **day {crossed}**; matured labels "
            f"(`performance`) confirmed it on **day {confirmed}**: a lead time of **{days} day{'s' if days != 1 else ''}**."]


def _sizing_line(size: Any) -> str:
    return (f"Sized for that traffic (`retrainer.demo.sizing`): training window {size.train_days} days "
            f"(`min_rows` {size.min_rows}), drift and estimate windows {size.drift_days} days, performance window "
            f"{size.performance_days} days, shadow guardrails after {size.shadow_comparisons} comparisons. Rollouts: "
            "`rollout.mode: auto` (a paired shadow, promoted or rejected by the posterior of challenger − champion; "
            "`rollout.decision` defaults, docs/rollout.md).")


def summary_markdown(result: Any, drift_window: tuple[pd.Timestamp, pd.Timestamp],
                     lead: dict[str, Any] | None = None) -> str:
    spec = result.spec
    lines = [
        "# retrainer demo",
        "",
        f"{spec.days - spec.history_days} days simulated after {spec.history_days} days of history, "
        f"{spec.rows_per_day} requests a day; the data drifts from day {spec.drift_day}.",
        "",
        _sizing_line(spec.sizing()),
        "",
        "## When each trigger fired",
        "",
    ]
    for label, days in result.fires().items():
        lines.append(f"- **{label}**: " + (", ".join(f"day {d}" for d in days) if days else "never"))
    if lead is not None:
        lines += ["", "## Estimated vs realized performance", "", *_lead_lines(lead)]
    lines += ["", "## Retrains", "", "| day | reasons | status | version | candidate f1 | champion f1 |", "|---|---|---|---|---|---|"]
    for r in result.retrains:
        cand = r.get("candidate_metrics", {}).get("f1")
        champ = (r.get("champion_metrics") or {}).get("f1")
        lines.append(f"| {r['day']} | {', '.join(r['reasons'])} | {r['status']} | {r.get('version') or ''} | "
                     f"{'' if cand is None else f'{cand:.3f}'} | {'' if champ is None else f'{champ:.3f}'} |")
    lines += ["", "## Rollouts", "", "Each challenger's stages (rollout flow), with the day each began:", ""]
    for r in getattr(result, "rollouts", []):
        stages = " → ".join(f"{st['stage']} (day {st['day']}, {st['at'][:10]})" for st in r["stages"])
        lines.append(f"- rollout {r['id']}, version {r['version']} against champion {r['champion']}: {stages}")
    for m in getattr(result, "champion_moves", []):
        lines.append(f"- day {m['day']}: {m['action']} {m['from'] or '(none)'} → {m['to']}")
    lines.append("")
    for s in result.shadow:
        lines.append(f"- shadow of version {s['version']}: {s['n']} comparisons, agreement "
                     f"{s['agreement_rate'] if s['agreement_rate'] is None else format(s['agreement_rate'], '.1%')}")
    trails = [r for r in getattr(result, "rollouts", []) if r.get("trail")]
    if trails:
        lines += ["", "## Each rollout's posterior by day", "",
                  "Δ = challenger − champion on the gate's paired accuracy: the prior from the offline holdout, "
                  "updated each day with the shadow's labelled pairs and label-free (calibrated) pairs. With "
                  "`rollout.decision`'s defaults: promote when P(Δ < −margin) ≤ 0.05 and the expected loss is within "
                  "bound; reject when P(Δ < 0) ≥ 0.95; otherwise keep collecting (docs/rollout.md). Also the bottom panel of `timeline.png`.", ""]
        for r in trails:
            lines += [*posterior_table(r), ""]
    lines += ["", "## Day by day", "", "| day | verdict | events |", "|---|---|---|"]
    for d in result.days:
        verdict = "retrain: " + ", ".join(d.monitor["reasons"]) if d.monitor["should_retrain"] else "quiet"
        lines.append(f"| {d.day} | {verdict} | {'; '.join(d.events)} |")
    lines += [
        "",
        "## Files",
        "",
        f"- drift report (Evidently, training data vs {drift_window[0]:%Y-%m-%d} to {drift_window[1]:%Y-%m-%d}): "
        "`drift_report.html`",
        "- trigger timeline: `timeline.png`",
        f"- configuration: `{result.config_path.name}`; ledger: `retrainer history --config {result.config_path}`",
        "",
    ]
    return "\n".join(lines)
