"""Retry policy of the I/O tasks: exponential backoff with jitter, only on I/O failures (a retry can fix those).

Private to :mod:`retrainer.tasks`: the task modules import it from here, the package only re-exports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from retrainer.errors import ConfigError, RegistryError, StoreError

# MLflow's error codes (MlflowException.error_code) that name a passing condition of the server.
_TRANSIENT_MLFLOW_CODES = frozenset(
    {"INTERNAL_ERROR", "TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED", "DEADLINE_EXCEEDED", "IO_ERROR", "ABORTED"}
)


def is_transient(exc: BaseException | None) -> bool:
    """Whether a retry could fix ``exc``: an I/O failure (a connection, a locked database, a busy server).

    Retrying is opt-in by kind, not opt-out: invalid configuration, errors marked ``permanent``
    (too little data, a mistyped column, an unsafe model) and anything unexpected (a TypeError is
    a bug or bad data, not a glitch) fail the same way every time; retrying them only delays the
    alert by the backoff (2 + 4 + 8 s).
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # the explicit cause chain (``raise ... from``)
        seen.add(id(exc))
        if isinstance(exc, ConfigError) or getattr(exc, "permanent", False):
            return False
        if isinstance(exc, (OSError, StoreError, RegistryError)):  # OSError: connections, timeouts, disks
            return True
        if _is_sqlalchemy_io_error(exc) or getattr(exc, "error_code", None) in _TRANSIENT_MLFLOW_CODES:
            return True
        exc = exc.__cause__
    return False


def _is_sqlalchemy_io_error(exc: BaseException) -> bool:
    import sqlalchemy.exc as sa_exc

    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError))


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only what :func:`is_transient` calls an I/O failure."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - unknown state shape: fall back to the retry policy
        return True
    return is_transient(exc) if isinstance(exc, BaseException) else True


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


__all__ = ["io_task", "is_transient", "retry_on_transient"]
