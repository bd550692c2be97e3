"""Thin Prefect tasks over plain, typed functions (load, train, evaluate, gate, register, integration).

The plain functions hold the logic and are what unit tests call; each module ends with its
``*_task`` wrapper. I/O tasks retry with exponential backoff and jitter, but only on errors that
a retry can fix (see :func:`retry_on_transient`); compute tasks never retry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from retrainer.errors import ConfigError, PromotionConflict


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry unless the failure is one a retry cannot fix.

    Invalid configuration, too little data and a lost promotion race fail the same way every
    time; retrying them only delays the alert.
    """
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - unknown state shape: fall back to the retry policy
        return True
    if isinstance(exc, (ConfigError, PromotionConflict)) or getattr(exc, "permanent", False):
        return False
    return True


def io_task(fn: Callable[..., Any], *, name: str, retries: int = 3) -> Any:
    """The Prefect task for an I/O step: exponential backoff with jitter, transient errors only.

    Never cached: an I/O step's arguments (clients, stores) are not cache keys, and a side
    effect must never be served from a cache.
    """
    return task(
        fn,
        name=name,
        retries=retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=2),
        retry_jitter_factor=0.5,
        retry_condition_fn=retry_on_transient,
        cache_policy=NO_CACHE,
    )


# Re-exports come after the helper: the submodules import it from this package.
from retrainer.tasks.evaluate import Metrics, evaluate_model, evaluate_model_task  # noqa: E402
from retrainer.tasks.gate import GateResult, gate, gate_task  # noqa: E402
from retrainer.tasks.integration import (  # noqa: E402
    IntegrationCheck,
    IntegrationReport,
    integration_test,
    integration_test_task,
)
from retrainer.tasks.load import (  # noqa: E402
    InsufficientDataError,
    MissingColumnsError,
    TrainingData,
    load_training_data,
    load_training_data_task,
)
from retrainer.tasks.register import (  # noqa: E402
    RegisteredVersion,
    register_candidate,
    register_candidate_task,
    set_challenger,
    set_challenger_task,
)
from retrainer.tasks.train import build_estimator, train_model, train_model_task  # noqa: E402

__all__ = [
    "GateResult",
    "io_task",
    "InsufficientDataError",
    "IntegrationCheck",
    "IntegrationReport",
    "Metrics",
    "MissingColumnsError",
    "RegisteredVersion",
    "TrainingData",
    "build_estimator",
    "evaluate_model",
    "evaluate_model_task",
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
