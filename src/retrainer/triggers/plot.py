"""Draw a backtest: each trigger's statistic against its threshold over time, fires marked.

One panel per trigger (shared time axis): the value as a line, the threshold as a dashed
step line, the instants that trigger fired as red dots; vertical bands mark where the policy
would have started a retrain. When the policy has ``estimated_performance`` and/or
``performance``, their panels become one: the estimate of one metric with its confidence band
and the realized value on matured labels, read from the decisions' evidence
(:meth:`BacktestResult.quality`), so the lead of the estimate over the labels is visible.
Draws on a bare matplotlib Figure (Agg, no display, no pyplot state). The demo report reuses
:func:`plot_backtest`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from retrainer.triggers.backtest import ESTIMATED, REALIZED, BacktestResult, QualitySeries


def plot_backtest(result: BacktestResult, path: str | Path | None = None, *, title: str | None = None,
                  extra_panels: Sequence[tuple[str, Callable[[Any], None]]] = ()) -> Any:
    """Render ``result``; save it to ``path`` (PNG, SVG, ... by suffix) when given. Returns the Figure.

    ``extra_panels``: (label, draw) pairs appended below the triggers on the same time axis; ``draw``
    gets the panel's Axes (the demo draws each rollout's posterior there)."""
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    series = result.series()
    quality = result.quality()
    merged = {label for label, kind in result.kinds.items() if kind in (ESTIMATED, REALIZED)} if quality else set()
    names = [n for n in series if n not in merged]
    if quality is not None:
        names.insert(0, QUALITY_PANEL)
    names = (names or ["(no triggers)"]) + [label for label, _ in extra_panels]
    drawers = dict(extra_panels)
    fig = Figure(figsize=(10, 1.9 * len(names) + 1.0 + (0.8 if quality else 0.0)), layout="constrained")
    heights = [1.6 if n == QUALITY_PANEL else 1.0 for n in names]
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False, height_ratios=heights)[:, 0]
    fires = result.fires
    for ax, name in zip(axes, names):
        if name in drawers:
            drawers[name](ax)
            ax.set_ylabel(name, rotation=0, ha="right", va="center")
            ax.grid(alpha=0.3)
            continue
        if name == QUALITY_PANEL and quality is not None:
            _quality_panel(ax, quality)
            for t in fires:
                ax.axvline(t, color="tab:red", alpha=0.35, lw=2)
            continue
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
    top = axes[1] if quality is not None and len(axes) > 1 else axes[0]
    if fires:
        top.plot([], [], color="tab:red", alpha=0.35, lw=2, label="policy retrains")
    top.legend(loc="upper left", fontsize=8, ncols=4, frameon=False)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    n = len(fires)
    fig.suptitle(title or f"Backtest of {result.model_name}: {n} retrain{'s' if n != 1 else ''}"
                 f"; grey bands = insufficient data", fontsize=11)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


QUALITY_PANEL = "\0quality"  # a panel name no trigger label can have


def _nan(values: list[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def _quality_panel(ax: Any, q: QualitySeries) -> None:
    """Estimate + CI band and realized value of ``q.metric`` on one axis, with each trigger's line and fires."""
    at = q.at
    est, lo, hi, real = _nan(q.estimated), _nan(q.ci_low), _nan(q.ci_high), _nan(q.realized)
    if any(v == v for v in est):
        ax.fill_between(at, lo, hi, color="tab:blue", alpha=0.18, lw=0, label="estimate CI")
        ax.plot(at, est, color="tab:blue", lw=1.6, marker="o", ms=2.5, label=f"estimated {q.metric} (no labels needed)")
        ax.step(at, _nan(q.estimated_threshold), where="post", color="tab:blue", ls="--", lw=1.0,
                label="estimate's line")
        hits = [(t, v) for t, v, f in zip(at, est, q.estimated_fired) if f and v == v]
        if hits:
            ax.scatter(*zip(*hits), color="tab:red", marker="v", s=26, zorder=3, label="estimate crossed")
    if any(v == v for v in real):
        ax.plot(at, real, color="tab:green", lw=1.6, marker="s", ms=2.5, label=f"realized {q.metric} (matured labels)")
        if q.realized_threshold is not None:
            ax.axhline(q.realized_threshold, color="tab:green", ls=":", lw=1.0, label="performance floor")
        hits = [(t, v) for t, v, f in zip(at, real, q.realized_fired) if f and v == v]
        if hits:
            ax.scatter(*zip(*hits), color="tab:red", marker="s", s=22, zorder=3, label="labels confirmed")
    ax.set_ylabel(q.metric, rotation=0, ha="right", va="center")
    ax.set_title(f"{q.metric}: estimated (band = CI) vs realized on matured labels", fontsize=9, loc="left")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7, ncols=3, frameon=False)


__all__ = ["plot_backtest"]
