"""Keep third-party chatter off the terminal of a command that runs flows; the flow run's log keeps it.

What reaches a flow command's console that is not retrainer's to say:

* An expected failure. When a flow fails, Prefect reports it before the exception reaches the
  CLI: the task's ``Finished in state Failed(...)`` line, the flow engine's ``Encountered exception
  during execution`` with a traceback through ``prefect/flow_engine.py``, the flow's own final-state
  line. The CLI then prints its one-line error (:func:`retrainer.cli.main`). For a
  :class:`RetrainerError` — too little data, a config problem, a rejected gate: failures retrainer
  expects and explains — Prefect's lines only repeat that line behind a traceback: dropped, always.
* Any other exception's traceback (a bug). Dropped unless the user asks for debug output with
  ``RETRAINER_DEBUG=1`` (the CLI's line says so); then Prefect shows it, and ``main`` re-raises the
  exception with its own traceback. Prefect's one-line report of such a failure stays either way.
* Prefect's and MLflow's own INFO lines: "Starting/Stopping temporary server", every task's
  "Finished in state Completed()" (MLflow's "Downloading artifacts" bars are switched off for
  every command in ``retrainer/__init__``). Records below WARNING logged from inside the
  ``prefect`` or ``mlflow`` packages are dropped. Records retrainer logs through the flow's run
  logger (its own progress: "loaded 1995 training and 499 holdout rows") come from retrainer's
  files and pass, as does any warning or error.

Only console (stream) handlers get the filters: Prefect's API handler — the flow run's log in the
Prefect UI — keeps every record, tracebacks included.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from retrainer.errors import debug_requested
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
    """Failures on the console (module docstring): expected ones never, other tracebacks only on request."""

    def filter(self, record: logging.LogRecord) -> bool:
        if reports_expected_failure(record):
            return False
        return debug_requested() or (record.exc_info is None and not record.exc_text)


class _NoLibraryChatter(logging.Filter):
    """Drops INFO and below logged from inside the given package directories (by source file:
    the run logger's records carry the logger name of the run, but the file of their caller)."""

    def __init__(self, package_dirs: tuple[str, ...]) -> None:
        super().__init__()
        self.package_dirs = package_dirs

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not record.pathname.startswith(self.package_dirs)


def _package_dirs(name: str) -> tuple[str, ...]:
    """The package's directory as imported (what a record's ``pathname`` starts with) and resolved."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return ()
    where = next(iter(spec.submodule_search_locations))
    return tuple({os.path.join(where, ""), os.path.join(str(Path(where).resolve()), "")})


def quiet_flow_console() -> None:
    """Quiet a flow command's console (see the module docstring); idempotent.

    Call it in a command before it runs a flow. It sets up Prefect's logging itself (the flow's
    records reach the root logger's console handler, which Prefect creates then), so the order of
    imports cannot matter.
    """
    import prefect.main  # noqa: F401 - importing it runs Prefect's logging setup

    dirs = _package_dirs("prefect") + _package_dirs("mlflow")
    names = [name for name in logging.root.manager.loggerDict
             if name.split(".")[0] in ("prefect", "mlflow")]
    for logger in [logging.getLogger(name) for name in names] + [logging.getLogger()]:
        for handler in logger.handlers:
            is_console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            if not is_console:
                continue
            if not any(isinstance(f, CliConsoleFilter) for f in handler.filters):
                handler.addFilter(CliConsoleFilter())
            if not any(isinstance(f, _NoLibraryChatter) for f in handler.filters):
                handler.addFilter(_NoLibraryChatter(dirs))
