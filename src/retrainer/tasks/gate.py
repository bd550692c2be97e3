"""Prefect wrapper of the promotion gate; the rule itself lives in :mod:`retrainer.metrics`."""

from __future__ import annotations

from prefect import task

from retrainer.metrics import GateResult, gate

gate_task = task(gate, name="gate")

__all__ = ["GateResult", "gate", "gate_task"]
