"""The estimated-vs-realized panel: values and CI read from the decisions' evidence, one axis."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from matplotlib.collections import PolyCollection

from retrainer.triggers.backtest import BacktestResult, BacktestStep, quality_series
from retrainer.triggers.decision import Decision
from retrainer.triggers.plot import plot_backtest

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def status(fired: bool) -> str:
    return "fired" if fired else "ok"


def step(i: int, est: float | None, real: float | None) -> BacktestStep:
    e_fired, r_fired = est is not None and est < 0.7, real is not None and real < 0.7
    children = [
        Decision(trigger="drift", fired=False, status="ok", reason="", value=0.1, threshold=0.25),
        Decision(trigger="estimate", fired=e_fired, status=status(e_fired), reason="", value=est,
                 threshold=0.7,
                 evidence={} if est is None else {"worst": "f1", "estimate": {"f1": est, "accuracy": 0.9},
                                                  "ci": {"f1": [est - 0.02, est + 0.03], "accuracy": [0.88, 0.92]},
                                                  "lines": {"f1": 0.7, "accuracy": 0.8}}),
        Decision(trigger="performance", fired=r_fired, status=status(r_fired), reason="",
                 value=real, threshold=0.7,
                 evidence={} if real is None else {"metrics": {"f1": real, "accuracy": 0.91},
                                                   "thresholds": {"f1": 0.7, "accuracy": 0.85}}),
    ]
    policy = Decision(trigger="policy", fired=False, status="ok", reason="")
    return BacktestStep(T0 + i * DAY, False, False, None, policy, tuple(children))


ESTIMATES = [0.82, 0.80, 0.66, 0.62, 0.61]
REALIZED = [None, 0.83, 0.81, 0.79, 0.64]
KINDS = {"drift": "drift", "estimate": "estimated_performance", "performance": "performance"}


def test_quality_series_reads_estimate_ci_and_realized_from_evidence() -> None:
    steps = [step(i, e, r) for i, (e, r) in enumerate(zip(ESTIMATES, REALIZED, strict=True))]
    q = quality_series(steps, KINDS)
    assert q is not None and q.metric == "f1"
    assert q.estimated == ESTIMATES and q.realized == REALIZED
    assert q.ci_low == pytest.approx([e - 0.02 for e in ESTIMATES]) and q.ci_high == pytest.approx([e + 0.03 for e in ESTIMATES])
    assert q.estimated_fired == [False, False, True, True, True]
    assert q.realized_fired == [False, False, False, False, True]
    assert q.realized_threshold == 0.7 and q.estimated_threshold == [0.7] * 5
    assert quality_series(steps, {"drift": "drift"}) is None


def test_plot_puts_estimate_band_and_realized_on_one_panel(tmp_path) -> None:
    steps = tuple(step(i, e, r) for i, (e, r) in enumerate(zip(ESTIMATES, REALIZED, strict=True)))
    result = BacktestResult("m", T0, T0 + 4 * DAY, DAY, steps, kinds=KINDS)
    fig = plot_backtest(result, tmp_path / "b.png")
    axes = fig.axes
    assert len(axes) == 2  # quality panel + drift; the two quality triggers no longer get their own
    top = axes[0]
    labels = [line.get_label() for line in top.get_lines()]
    assert "estimated f1 (no labels needed)" in labels and "realized f1 (matured labels)" in labels
    band = [c for c in top.collections if isinstance(c, PolyCollection)]
    assert band, "the CI band is drawn"
    ys = band[0].get_paths()[0].vertices[:, 1]
    assert min(ys) == pytest.approx(min(ESTIMATES) - 0.02) and max(ys) == pytest.approx(max(ESTIMATES) + 0.03)
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
