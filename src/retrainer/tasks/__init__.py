"""Thin Prefect tasks over plain, typed functions (load, train, evaluate, gate, register, integration).

The plain functions hold the logic and are what unit tests call; each module ends with its
``*_task`` wrapper. I/O tasks retry with exponential backoff and jitter, but only on errors that
a retry can fix (see :func:`retry_on_transient`); compute tasks never retry.
"""

from __future__ import annotations

from retrainer.tasks._retry import io_task, retry_on_transient
from retrainer.tasks.evaluate import Metrics, evaluate_model, evaluate_model_task, holdout_difference, holdout_difference_task
from retrainer.tasks.gate import GateResult, gate, gate_task
from retrainer.tasks.integration import (
    IntegrationCheck,
    IntegrationReport,
    LatencyRule,
    integration_test,
    integration_test_task,
)
from retrainer.tasks.load import (
    InsufficientDataError,
    MissingColumnsError,
    TrainingData,
    load_training_data,
    load_training_data_task,
)
from retrainer.tasks.register import (
    RegisteredVersion,
    register_candidate,
    register_candidate_task,
    set_challenger,
    set_challenger_task,
)
from retrainer.tasks.train import build_estimator, train_model, train_model_task

__all__ = [
    "GateResult",
    "io_task",
    "InsufficientDataError",
    "IntegrationCheck",
    "IntegrationReport",
    "LatencyRule",
    "Metrics",
    "MissingColumnsError",
    "RegisteredVersion",
    "TrainingData",
    "build_estimator",
    "evaluate_model",
    "evaluate_model_task",
    "holdout_difference",
    "holdout_difference_task",
    "gate",
    "gate_task",
    "integration_test",
    "integration_test_task",
    "load_training_data",
    "load_training_data_task",
    "register_candidate",
    "register_candidate_task",
    "retry_on_transient",
    "set_challenger",
    "set_challenger_task",
    "train_model",
    "train_model_task",
]
