"""Keep Prefect's tracebacks off the terminal of ``monitor``/``retrain``; the flow run's log keeps them.

A failed flow makes Prefect print the whole traceback on the console before retrainer's one-line
error. The console handlers get a filter that drops records carrying a traceback; the API
handler (the flow run's log in the Prefect UI) is left alone, so nothing is lost.
"""

from __future__ import annotations

import logging


class _NoTraceback(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.exc_info is None and not record.exc_text


def quiet_console_tracebacks() -> None:
    """Add the filter to every console (stream) handler of the ``prefect`` loggers; idempotent."""
    names = [name for name in logging.root.manager.loggerDict if name == "prefect" or name.startswith("prefect.")]
    for logger in [logging.getLogger(name) for name in names] + [logging.getLogger()]:
        for handler in logger.handlers:
            is_console = isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)
            if is_console and not any(isinstance(f, _NoTraceback) for f in handler.filters):
                handler.addFilter(_NoTraceback())
