"""retrainer: keeps production ML models fresh.

The public API is re-exported here deliberately; submodules whose names start with an
underscore are private.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from retrainer.errors import RetrainerError

try:
    __version__ = version("retrainer")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["RetrainerError", "__version__"]
