"""Every error retrainer raises on purpose derives from :class:`RetrainerError`.

Catch ``RetrainerError`` to handle them all; each message says what was wrong and
what to do about it. :func:`debug_requested` (``RETRAINER_DEBUG=1``) is the one switch for showing
the rest: unexpected tracebacks and the third-party output kept off the console.

::

    RetrainerError
    ├── ConfigError                 retrainer.yaml or an override is invalid
    │   └── MissingColumnsError     the training source lacks a configured column
    ├── InsufficientDataError       too few labelled rows (of each class) to train and evaluate honestly
    ├── TrainingDataError           the training source holds values that cannot be read as configured
    ├── StoreError                  the SQL store could not do what was asked
    │   ├── SchemaError             the database is not at the schema this code needs
    │   ├── InvalidIdentifierError  a table/column name from config is not a plain SQL name
    │   ├── ValidationError         a batch of predictions/labels was rejected (nothing written)
    │   └── LedgerTamperedError     the promotion ledger's hash chain does not verify (nothing acts on it)
    ├── StatisticsError             a statistic was asked of input it cannot be computed on
    ├── TriggerError                the trigger framework failed
    │   ├── TriggerLoadError        a plugin named in the config cannot be loaded
    │   ├── InvalidTriggerParams    a trigger's params do not match its Params model (also a ConfigError)
    │   └── TriggerEvaluationError  a trigger raised and the policy says fail
    ├── RegistryError               the MLflow model registry refused or lacks something
    │   └── UnsafeModelError        a version is not in a format retrainer loads safely (refused unread)
    └── RolloutError                A/B or shadow rollout is in a state that forbids the action
"""

from __future__ import annotations

import os

# Unexpected errors print one line; with this set they show in full, and third-party output
# (Prefect's, Dask's) that retrainer otherwise keeps off the console is shown too.
DEBUG_ENV = "RETRAINER_DEBUG"


def debug_requested() -> bool:
    """The user asked for tracebacks and third-party output (``RETRAINER_DEBUG=1``)."""
    return bool(os.environ.get(DEBUG_ENV))


class RetrainerError(Exception):
    """Root of every error retrainer raises on purpose."""


class ConfigError(RetrainerError):
    """The configuration is invalid; the message names the field path and allowed values."""


class MissingColumnsError(ConfigError):
    """The training source lacks columns that the configuration names."""


class InsufficientDataError(RetrainerError):
    """Too few labelled rows in the training window to train and evaluate honestly."""

    permanent = True  # retrying the same read a few seconds later will not find more rows


class TrainingDataError(RetrainerError):
    """The training source holds values retrainer cannot read as configured: a timestamp column of
    numbers or unparseable text, text in a numeric feature. The message names the column, what it
    holds and what would work."""

    permanent = True  # the same rows are read again on a retry


class StoreError(RetrainerError):
    """The SQL store could not perform an operation."""


class SchemaError(StoreError):
    """The database schema is missing or older than this code needs."""

    permanent = True  # only `retrainer store init|upgrade` changes it


class InvalidIdentifierError(StoreError, ConfigError):
    """A table or column name from configuration is not a plain SQL identifier."""


class ValidationError(StoreError):
    """A batch was rejected before anything was written; ``problems`` lists each row's fault."""

    permanent = True  # the same batch is rejected the same way

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems or [])


class LedgerTamperedError(StoreError):
    """The promotion ledger's hash chain is broken: a row was edited, removed or forged.

    Nothing that would act on the ledger (monitor, retrain, promote) may proceed; the message
    names the first bad row. Retrying reads the same rows, so never retry.
    """

    permanent = True


class StatisticsError(RetrainerError):
    """A statistic cannot be computed on the given input (empty, all-NaN, ...)."""


class TriggerError(RetrainerError):
    """The trigger framework failed."""


class TriggerLoadError(TriggerError):
    """A trigger plugin that the configuration uses could not be loaded."""


class InvalidTriggerParams(TriggerError, ConfigError):
    """A trigger's params do not match its ``Params`` model (a config problem of one trigger)."""


class TriggerEvaluationError(TriggerError):
    """A trigger raised during evaluation and the policy is configured to fail."""


class RegistryError(RetrainerError):
    """The MLflow model registry refused an operation or lacks a model/version/alias."""


class UnsafeModelError(RegistryError):
    """A registered version is not skops with types retrainer trusts: refused before a byte is deserialized."""

    permanent = True  # a retry loads the same artifact: never retry


class RolloutError(RetrainerError):
    """An A/B test or shadow rollout is in a state that forbids the requested action."""


__all__ = [
    "RetrainerError",
    "ConfigError",
    "MissingColumnsError",
    "InsufficientDataError",
    "TrainingDataError",
    "StoreError",
    "SchemaError",
    "InvalidIdentifierError",
    "ValidationError",
    "LedgerTamperedError",
    "StatisticsError",
    "TriggerError",
    "TriggerLoadError",
    "InvalidTriggerParams",
    "TriggerEvaluationError",
    "RegistryError",
    "UnsafeModelError",
    "RolloutError",
]
