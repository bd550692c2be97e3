"""The rollout flow's markdown artifact shows each look's posterior (docs/rollout.md, section 8)."""

from __future__ import annotations

from datetime import UTC, datetime

from retrainer.deployments.rollout.posterior import summary_line
from retrainer.flows.rollout import step_markdown

EVIDENCE = {"posterior": {"mean": 0.031, "sd": 0.01, "interval": [0.0114, 0.0506], "p_worse_than_margin": 0.0001,
                          "p_worse": 0.001, "expected_loss": 0.00001, "margin": 0.01},
            "n_labelled": 640, "n_unlabelled": 180, "checks": []}


def test_the_posterior_line_states_the_rules_figures():
    assert summary_line(EVIDENCE) == ("delta +0.0310 [+0.0114, +0.0506], P(worse by > 0.01) 0.000, expected loss "
                                      "0.0000, 640 labelled + 180 label-free pairs")
    assert summary_line({"guard": {}}) is None and summary_line(None) is None


def test_the_artifact_carries_it():
    step = {"model": "m", "action": "waiting", "explanation": "keep collecting", "version": "2", "rollout_id": 1,
            "stage_before": "shadow", "stage": "shadow", "waiting_for": ["more pairs"], "evidence": EVIDENCE}
    md = step_markdown(step, datetime(2026, 3, 2, tzinfo=UTC))
    assert "- posterior: delta +0.0310" in md and "- waiting for: more pairs" in md
