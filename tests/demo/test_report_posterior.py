"""The demo report's posterior by day, from a rollout's trail (no demo run needed)."""

from __future__ import annotations

from matplotlib.figure import Figure

from retrainer.demo.report import draw_posteriors, posterior_lines, posterior_table

ROLLOUT = {
    "id": 1, "version": "2", "champion": "1", "stage": "champion",
    "trail": [
        {"at": "2026-01-28T00:00:00+00:00", "day": 27, "stage": "shadow", "mean": None, "interval": None,
         "p_worse_than_margin": None, "expected_loss": None, "n_labelled": 0, "n_unlabelled": 0, "action": None},
        {"at": "2026-01-29T00:00:00+00:00", "day": 28, "stage": "shadow", "mean": 0.0558, "interval": [-0.0829, 0.1946],
         "p_worse_than_margin": 0.176, "expected_loss": 0.00868, "n_labelled": 28, "n_unlabelled": 384,
         "action": "continue"},
        {"at": "2026-02-02T00:00:00+00:00", "day": 32, "stage": "shadow", "mean": 0.0657, "interval": [0.0244, 0.1069],
         "p_worse_than_margin": 0.0001, "expected_loss": 0.00001, "n_labelled": 617, "n_unlabelled": 575,
         "action": "promote"},
    ],
}


def test_the_table_has_one_row_per_look_with_a_posterior_and_its_figures():
    rows = [line for line in posterior_table(ROLLOUT) if line.startswith("| 2") or line.startswith("| 3")]
    assert rows == [
        "| 28 | shadow | +0.0558 | [-0.0829, +0.1946] | 0.176 | 0.00868 | 28 | 384 | continue |",
        "| 32 | shadow | +0.0657 | [+0.0244, +0.1069] | 0.000 | 0.00001 | 617 | 575 | promote |",
    ]


def test_the_console_lines_say_the_same():
    lines = posterior_lines(ROLLOUT)
    assert len(lines) == 2
    assert lines[1] == ("day 32 shadow: delta +0.0657 [+0.0244, +0.1069], P(worse than margin) 0.000, expected loss "
                        "0.00001, 617 labelled + 575 label-free pairs: promote")


def test_the_panel_draws_the_mean_and_the_interval_and_the_margin_line():
    ax = Figure().subplots()
    draw_posteriors(ax, [ROLLOUT], margin=0.01)
    mean_line = next(line for line in ax.get_lines() if line.get_label() == "version 2 vs 1")
    assert list(mean_line.get_ydata()) == [0.0558, 0.0657]
    assert any(list(line.get_ydata()) == [-0.01, -0.01] for line in ax.get_lines())  # -margin
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() == -0.0829 and band.max() == 0.1946
