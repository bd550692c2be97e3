from __future__ import annotations

import pytest
from prefect.states import Failed

from retrainer import tasks
import sqlalchemy.exc as sa_exc

from retrainer.errors import (
    ConfigError,
    RegistryError,
    SchemaError,
    StoreError,
    TrainingDataError,
    UnsafeModelError,
    ValidationError,
)
from retrainer.tasks.load import InsufficientDataError, MissingColumnsError


def _caused_by(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


def _mlflow_error(code: str) -> Exception:
    from mlflow.exceptions import MlflowException
    from mlflow.protos import databricks_pb2

    return MlflowException("server said no", error_code=getattr(databricks_pb2, code))


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
        # Only I/O failures are retried: bad data and bugs fail the same way every time.
        (TrainingDataError("column 'ts' holds numbers"), False),
        (TypeError("must be real number, not str"), False),
        (ValueError("could not convert"), False),
        (ValidationError("bad batch"), False),
        (SchemaError("run retrainer store upgrade"), False),
        (TimeoutError("read timed out"), True),
        (sa_exc.OperationalError("SELECT 1", {}, Exception("database is locked")), True),
        (_caused_by(RuntimeError("wrapped"), ConnectionResetError("peer")), True),
        (_caused_by(RuntimeError("wrapped"), TypeError("a bug")), False),
        (_mlflow_error("TEMPORARILY_UNAVAILABLE"), True),
        (_mlflow_error("RESOURCE_DOES_NOT_EXIST"), False),
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


def test_the_monitor_and_fleet_tasks_retry_only_transient_failures():
    # A fleet.yaml whose store has no schema was retried twice (12 s) before its one-line error.
    import importlib

    from retrainer.errors import SchemaError

    fleet, monitor = (importlib.import_module(f"retrainer.flows.{m}") for m in ("fleet", "monitor"))

    for t in (fleet.check_fleet_batch_task, fleet.check_config_batch_task, monitor.check_model_task,
              monitor.compact_task, monitor.verify_ledger_task):
        assert t.retries == 2 and t.retry_condition_fn is tasks.retry_on_transient, t.name
    assert tasks.retry_on_transient(None, None, Failed(data=SchemaError("no schema"))) is False
