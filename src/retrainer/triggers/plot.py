"""Draw a backtest: each trigger's statistic against its threshold over time, fires marked.

One panel per trigger (shared time axis): the value as a line, the threshold as a dashed
step line, the instants that trigger fired as red dots; vertical bands mark where the policy
would have started a retrain. Draws on a bare matplotlib Figure (Agg, no display, no pyplot state). The demo
report reuses :func:`plot_backtest`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retrainer.triggers.backtest import BacktestResult


def plot_backtest(result: BacktestResult, path: str | Path | None = None, *, title: str | None = None) -> Any:
    """Render ``result``; save it to ``path`` (PNG, SVG, ... by suffix) when given. Returns the Figure."""
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    series = result.series()
    names = list(series) or ["(no triggers)"]
    fig = Figure(figsize=(10, 1.9 * len(names) + 1.0), layout="constrained")
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False)[:, 0]
    fires = result.fires
    for ax, name in zip(axes, names):
        s = series.get(name)
        if s is None:
            continue
        at = s["at"]
        vals = [float("nan") if v is None else v for v in s["value"]]
        thr = [float("nan") if v is None else v for v in s["threshold"]]
        ax.plot(at, vals, color="tab:blue", lw=1.6, marker="o", ms=2.5, label="value")
        ax.step(at, thr, where="post", color="tab:gray", ls="--", lw=1.2, label="threshold")
        fired = [(t, v) for t, v, f in zip(at, vals, s["fired"]) if f]
        if fired:
            ax.scatter([t for t, _ in fired], [v if v == v else 0 for _, v in fired], color="tab:red", zorder=3,
                       s=22, label="trigger fired")
        insufficient = [t for t, st in zip(at, s["status"]) if st in ("insufficient_data", "error")]
        for t in insufficient:
            ax.axvspan(t - result.every / 2, t + result.every / 2, color="0.92", lw=0)
        for t in fires:
            ax.axvline(t, color="tab:red", alpha=0.35, lw=2)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
        ax.grid(alpha=0.3)
    if fires:
        axes[0].plot([], [], color="tab:red", alpha=0.35, lw=2, label="policy retrains")
    axes[0].legend(loc="upper left", fontsize=8, ncols=4, frameon=False)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    n = len(fires)
    fig.suptitle(title or f"Backtest of {result.model_name}: {n} retrain{'s' if n != 1 else ''}"
                 f"; grey bands = insufficient data", fontsize=11)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


__all__ = ["plot_backtest"]
