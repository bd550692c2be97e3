"""Release ``n`` threads at the same instant and collect what each returned or raised.

Not a conftest: test modules import it by name (``from thread_race import race``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

T = TypeVar("T")


def race(
    n: int,
    call: Callable[[Any, int], T],
    *,
    each: Callable[[], AbstractContextManager[Any]] = nullcontext,
    timeout: float = 60.0,
) -> tuple[dict[int, T], list[BaseException]]:
    """Run ``call(own, i)`` in ``n`` threads released together by a barrier; ``own`` is what the
    thread's ``each()`` context yields (e.g. its own Store, as separate worker processes would have),
    entered before the barrier so that opening it is not part of the race.

    Returns ``({i: result}, [errors])``: a contender that raised is in the errors, never lost."""
    barrier = threading.Barrier(n, timeout=timeout)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def contender(i: int) -> None:
        try:
            with each() as own:
                barrier.wait()
                results[i] = call(own, i)
        except BaseException as exc:  # noqa: BLE001 - surfaced to the caller
            errors.append(exc)

    threads = [threading.Thread(target=contender, args=(i,), name=f"race-{i}") for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    alive = [t.name for t in threads if t.is_alive()]
    if alive:
        errors.append(TimeoutError(f"contenders still running after {timeout} s: {', '.join(alive)}"))
    return results, errors


__all__ = ["race"]
