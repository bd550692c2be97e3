from __future__ import annotations

import pytest
from prefect.states import Failed

from retrainer import tasks
from retrainer.errors import ConfigError, RegistryError, StoreError, UnsafeModelError
from retrainer.tasks.load import InsufficientDataError, MissingColumnsError


@pytest.mark.parametrize(
    ("exc", "retry"),
    [
        (StoreError("connection reset"), True),
        (RegistryError("mlflow 503"), True),
        (ConnectionError("net"), True),
        (ConfigError("bad yaml"), False),
        (MissingColumnsError("no column x"), False),
        (InsufficientDataError("found 3 rows"), False),
        (UnsafeModelError("pickle"), False),
    ],
)
def test_only_transient_failures_are_retried(exc, retry):
    assert tasks.retry_on_transient(None, None, Failed(data=exc)) is retry


def test_io_tasks_retry_with_backoff_and_compute_tasks_do_not():
    for io_task in (tasks.load_training_data_task, tasks.register_candidate_task, tasks.set_challenger_task):
        assert io_task.retries == 3
        assert io_task.retry_jitter_factor == 0.5
        assert io_task.retry_delay_seconds == [2, 4, 8]  # exponential_backoff(backoff_factor=2)
        assert io_task.retry_condition_fn is tasks.retry_on_transient
    for compute in (tasks.train_model_task, tasks.evaluate_model_task, tasks.gate_task, tasks.integration_test_task):
        assert compute.retries == 0
    assert tasks.load_training_data_task.name == "load"
    assert tasks.load_training_data_task.fn is tasks.load_training_data
