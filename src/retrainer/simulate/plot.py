"""Draw a simulation: each policy's realized metric over time, and where it retrained.

Top panel: the gate metric of the deployed model on each step's rows, as a rolling mean over
``smooth`` steps (single steps of a daily stream are a handful of rows: too noisy to read).
Bottom panel: one row per policy, a tick at each retrain (filled: deployed; hollow: rejected
by the gate). Bare matplotlib Figure (Agg, no pyplot state), like :mod:`retrainer.triggers.plot`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from retrainer.simulate.engine import SimulationResult


def _rolling(values: np.ndarray, n: int) -> np.ndarray:
    """Mean of the defined values among the last ``n`` steps (NaN where none is defined)."""
    ok = ~np.isnan(values)
    total = np.convolve(np.where(ok, values, 0.0), np.ones(n), mode="full")[: len(values)]
    count = np.convolve(ok.astype(float), np.ones(n), mode="full")[: len(values)]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _short(name: str, width: int = 32) -> str:
    """Policy specs can be long (``cost_benefit:metric=...;window=...``): keep the plot's width for the data."""
    return name if len(name) <= width else name[: width - 1] + "…"


def plot_simulation(result: SimulationResult, path: str | Path | None = None, *, smooth: int | None = None) -> Any:
    """Render ``result``; save it to ``path`` when given (format by suffix). Returns the Figure."""
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    runs = result.runs
    n_steps = len(result.grid)
    smooth = smooth or max(1, n_steps // 20)
    fig = Figure(figsize=(11, 4.5 + 0.3 * len(runs)), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, max(1, 0.35 * len(runs))])
    colors = [f"C{i}" for i in range(len(runs))]
    at = list(result.grid.instants)
    for i, (run, color) in enumerate(zip(runs, colors)):
        values = np.array([s.metrics.get(result.metric, np.nan) for s in run.steps], dtype=float)
        top.plot(at, _rolling(values, smooth), color=color, lw=1.4, label=_short(run.name))
        done = [s.at for s in run.steps if s.accepted]
        rejected = [s.at for s in run.steps if s.retrained and not s.accepted]
        bottom.scatter(done, [i] * len(done), marker="|", s=120, color=color)
        bottom.scatter(rejected, [i] * len(rejected), marker="o", s=14, facecolors="none", edgecolors=color)
    top.set_ylabel(f"{result.metric} (mean of {smooth} step{'s' if smooth != 1 else ''})")
    top.grid(alpha=0.3)
    top.legend(loc="lower left", fontsize=8, ncols=min(4, len(runs)), frameon=False)
    bottom.set_yticks(range(len(runs)), [_short(r.name) for r in runs], fontsize=8)
    bottom.set_ylim(-0.6, len(runs) - 0.4)
    bottom.invert_yaxis()
    bottom.set_xlabel("retrains: | deployed, o rejected by the gate")
    bottom.grid(alpha=0.2, axis="x")
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    fig.suptitle(f"Simulated policies for {result.model}: {n_steps} steps of {result.settings.to_dict()['every']}",
                 fontsize=11)
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


__all__ = ["plot_simulation"]
