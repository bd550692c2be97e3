"""Prefect flows. They orchestrate tasks from :mod:`retrainer.tasks`; the logic lives elsewhere.

* :func:`monitor` - check the policy, audit, artifact, ``retrainer.retrain.requested`` event
* :func:`retrain` - load, train, evaluate both, gate, register, challenger, integration test, roll out
* :func:`fleet` - the monitor check for many models concurrently
"""

from __future__ import annotations

from retrainer.flows.fleet import fleet, fleet_on_dask
from retrainer.flows.monitor import monitor
from retrainer.flows.retrain import RetrainResult, retrain, run_retrain

__all__ = ["RetrainResult", "fleet", "fleet_on_dask", "monitor", "retrain", "run_retrain"]
