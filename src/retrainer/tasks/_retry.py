"""Retry policy of the I/O tasks: exponential backoff with jitter, only on errors a retry can fix.

Private to :mod:`retrainer.tasks`: the task modules import it from here, the package only re-exports.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from retrainer.errors import ConfigError


def retry_on_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry unless the failure is one a retry cannot fix.

    Invalid configuration and errors marked ``permanent`` (too little data, an unsafe model) fail
    the same way every time; retrying them only delays the alert.
    """
    try:
        exc = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - unknown state shape: fall back to the retry policy
        return True
    if isinstance(exc, ConfigError) or getattr(exc, "permanent", False):
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


__all__ = ["io_task", "retry_on_transient"]
