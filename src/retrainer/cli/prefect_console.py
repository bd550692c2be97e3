"""Keep third-party chatter off the terminal of ``monitor``/``retrain``; the flow run's log keeps it.

Two things reach a flow command's console that are not retrainer's to say:

* A failed flow makes Prefect print the whole traceback before retrainer's one-line error.
* Prefect's and MLflow's own INFO lines: "Starting/Stopping temporary server", every task's
  "Finished in state Completed()", MLflow's "Downloading artifacts" progress bars.

The console (stream) handlers get filters that drop records carrying a traceback, and records
below WARNING logged from inside the ``prefect`` or ``mlflow`` packages. Records retrainer logs
through the flow's run logger (its own progress: "loaded 1995 training and 499 holdout rows")
come from retrainer's files and pass, as does any warning or error. The API handler (the flow
run's log in the Prefect UI) is left alone, so nothing is lost.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None and not record.exc_text


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
    """Quiet a flow command's console (see the module docstring); idempotent. Call after prefect is imported."""
    # MLflow draws a tqdm bar per artifact download (a model load); its own switch, a user's choice wins.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    dirs = _package_dirs("prefect") + _package_dirs("mlflow")
    names = [name for name in logging.root.manager.loggerDict
             if name.split(".")[0] in ("prefect", "mlflow")]
    for logger in [logging.getLogger(name) for name in names] + [logging.getLogger()]:
        for handler in logger.handlers:
            is_console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            if not is_console:
                continue
            if not any(isinstance(f, _NoTraceback) for f in handler.filters):
                handler.addFilter(_NoTraceback())
            if not any(isinstance(f, _NoLibraryChatter) for f in handler.filters):
                handler.addFilter(_NoLibraryChatter(dirs))
