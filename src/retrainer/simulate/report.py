"""The simulation for people: a table of the compared policies, and a markdown report."""

from __future__ import annotations

import math
from typing import Any

from retrainer.simulate.costs import PolicySummary
from retrainer.simulate.engine import SimulationResult

COLUMNS = ("policy", "retrains", "deployed", "errors", "mean {m}", "worst {m}", "cost", "regret", "no data")


def _num(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def _money(value: float | None) -> str:
    return "–" if value is None else f"{value:,.1f}"


def summary_rows(result: SimulationResult) -> list[list[str]]:
    """One row per policy, in the order compared (the columns of :data:`COLUMNS`)."""
    out = []
    for s in result.summaries:
        out.append([s.policy, str(s.retrains), str(s.deployments), f"{s.errors:,}", _num(s.mean_metric),
                    _num(s.worst_metric), _money(s.cost), _money(s.regret),
                    ("–" if s.policy == "oracle" else f"{s.undecided_share:.0%}" + (" !" if s.undecided_flag else ""))])
    return out


def undecided_flags(result: SimulationResult) -> list[str]:
    """One line per policy that could not decide at more than half of its checks, naming why."""
    return [f"! {s.undecided_flag}" for s in result.summaries if s.undecided_flag]


def headers(result: SimulationResult) -> list[str]:
    return [c.format(m=result.metric) for c in COLUMNS]


def rich_table(result: SimulationResult) -> Any:
    from rich.table import Table

    st = result.settings
    table = Table(title=f"retrainer simulate — {result.model}: {len(result.grid)} steps of "
                  f"{st.to_dict()['every']}, retrain cost {st.costs.retrain_cost:g}, error cost {st.costs.error_cost:g}",
                  title_justify="left")
    rows = summary_rows(result)
    for i, h in enumerate(headers(result)):
        if i == 0:  # long specs fold; the figures never do (their headers may wrap)
            table.add_column(h, overflow="fold", min_width=min(12, max(len(r[0]) for r in rows)))
        else:
            widest = max(len(r[i]) for r in rows)
            table.add_column(h, justify="right", min_width=max(widest, *(len(w) for w in h.split())))
    for row in rows:
        table.add_row(*row)
    return table


def markdown_table(result: SimulationResult) -> str:
    head = headers(result)
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(result)]
    flags = undecided_flags(result)
    return "\n".join(lines + ([""] + flags if flags else []))


def _best(summaries: tuple[PolicySummary, ...]) -> PolicySummary | None:
    real = [s for s in summaries if s.policy != "oracle"]
    return min(real, key=lambda s: s.cost) if real else None


def markdown_report(result: SimulationResult, *, plot: str | None = None) -> str:
    st = result.settings.to_dict()
    best = _best(result.summaries)
    lines = [
        f"# Simulated retraining policies for `{result.model}`",
        "",
        f"Replay from {st['start']} to {st['end']} every {st['every']} ({len(result.grid)} steps); labels arrive "
        f"{st['label_delay']} after the event; training window {st['train_window'] or 'all history'}; "
        f"gate metric `{result.metric}`.",
        f"Cost = {st['retrain_cost']:g} × retrains + {st['error_cost']:g} × errors; regret = cost − oracle cost.",
        "",
        markdown_table(result),
        "",
    ]
    if best is not None:
        lines.append(f"Cheapest policy replayed: **{best.policy}** (cost {best.cost:,.1f}"
                     + (f", regret {best.regret:,.1f}" if best.regret is not None else "") + ").")
    if result.oracle is not None:
        when = ", ".join(result.grid.instants[k].date().isoformat() for k in result.oracle.retrain_steps) or "never"
        lines.append(f"The oracle retrains {result.oracle.retrains} time(s): {when}.")
    lines += [
        "",
        f"Models trained: {result.cache.trained} (each training window once, shared by every policy); "
        f"trainings refused for too few rows: {result.cache.failed}.",
        "",
        "How to read it: *retrains* counts runs that trained a model, *deployed* those the gate accepted; "
        "*no data* is the share of checks where the policy had too little data to decide (flagged `!` above half); "
        f"*mean {result.metric}* averages the deployed model's metric over the steps where it is defined, *worst* "
        "is the lowest step. Each policy saw only what was visible at each step (events before it, labels "
        "arrived by it). Limits: retraining takes no simulated time; the oracle deploys every model it trains "
        "(no gate), which makes it a lower bound. See docs/simulate.md.",
    ]
    if plot:
        lines += ["", f"![realized {result.metric} per policy]({plot})"]
    return "\n".join(lines) + "\n"


__all__ = ["undecided_flags", "headers", "markdown_report", "markdown_table", "rich_table", "summary_rows"]
