"""Prefect's console output under the CLI: an expected failure is retrainer's one line, never Prefect's traceback.

When a flow fails, Prefect reports it on the console before the exception reaches the CLI: the
task's ``Finished in state Failed(...)`` line, the flow engine's ``Encountered exception during
execution`` with a traceback through ``prefect/flow_engine.py``, the flow's own final-state line.
The CLI then prints its one-line error (:func:`retrainer.cli.main`). For a :class:`RetrainerError`
— too little data, a config problem, a rejected gate: failures retrainer expects and explains —
Prefect's lines only repeat that line behind a traceback, so the console drops them, always.

Any other exception is a bug. Its traceback records are dropped too, unless the user asks for
debug output with ``RETRAINER_DEBUG=1`` (the CLI's line says so); then Prefect shows them, and
``main`` re-raises the exception with its own traceback. Prefect's one-line reports of such a
failure stay either way.

Only console (stream) handlers get the filter: Prefect's API handler — the flow run's log in the
Prefect UI — keeps every record, tracebacks included.
"""

from __future__ import annotations

import logging
import re

from retrainer.cli.common import debug_requested
from retrainer.errors import RetrainerError

# Prefect's failed-state message names the exception's type: "Task run encountered an exception
# InsufficientDataError: ..." / "Flow run encountered an exception: InsufficientDataError: ...".
# These records carry no exception object, so the type name is all there is to go on.
_FAILED_STATE = re.compile(r"encountered an exception:? (?P<type>[A-Za-z_]\w*):")


def _expected_error_names() -> set[str]:
    """Names of RetrainerError and every subclass defined so far (plugins may add their own)."""
    names: set[str] = set()
    todo: list[type[BaseException]] = [RetrainerError]
    while todo:
        cls = todo.pop()
        if cls.__name__ not in names:
            names.add(cls.__name__)
            todo.extend(cls.__subclasses__())
    return names


def reports_expected_failure(record: logging.LogRecord) -> bool:
    """Whether ``record`` is Prefect reporting a RetrainerError: it carries one, or its failed state names one."""
    if record.exc_info and record.exc_info[1] is not None:
        return isinstance(record.exc_info[1], RetrainerError)
    found = _FAILED_STATE.search(record.getMessage())
    return found is not None and found.group("type") in _expected_error_names()


class CliConsoleFilter(logging.Filter):
    """The console's rule (module docstring): expected failures never, other tracebacks only on request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if reports_expected_failure(record):
            return False
        return debug_requested() or (record.exc_info is None and not record.exc_text)


def quiet_console_tracebacks() -> None:
    """Set up Prefect's logging and add the filter to every console handler it logs through; idempotent.

    Call it in a command before it runs a flow (the flow's records reach the root logger's console
    handler, which Prefect creates when it sets up logging — done here so the order cannot matter).
    """
    import prefect.main  # noqa: F401 - importing it runs Prefect's logging setup

    names = [name for name in logging.root.manager.loggerDict if name == "prefect" or name.startswith("prefect.")]
    for logger in [logging.getLogger(name) for name in names] + [logging.getLogger()]:
        for handler in logger.handlers:
            is_console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            if is_console and not any(isinstance(f, CliConsoleFilter) for f in handler.filters):
                handler.addFilter(CliConsoleFilter())
