"""Counterfactual replay of retraining policies: ``retrainer simulate``.

What would each policy have done on the history of the configured data source? The replay
(:mod:`~retrainer.simulate.replay`) checks the real policy at each step on only what was visible
then, trains and gates with the real training code (:mod:`~retrainer.simulate.models`), scores
the deployed model on the step's rows, and prices the result (:mod:`~retrainer.simulate.costs`)
against the cheapest schedule in hindsight (:mod:`~retrainer.simulate.oracle`).
"""

from __future__ import annotations

from retrainer.simulate.costs import Costs, PolicySummary
from retrainer.simulate.engine import DEFAULT_COMPARE, SimulationResult, SimulationSettings, model_cache, simulate
from retrainer.simulate.history import History, StepGrid
from retrainer.simulate.oracle import OracleSolution, solve_oracle
from retrainer.simulate.policies import ORACLE, build_compared_policy, split_specs

__all__ = [
    "DEFAULT_COMPARE",
    "ORACLE",
    "Costs",
    "History",
    "OracleSolution",
    "PolicySummary",
    "SimulationResult",
    "SimulationSettings",
    "StepGrid",
    "build_compared_policy",
    "model_cache",
    "simulate",
    "solve_oracle",
    "split_specs",
]
