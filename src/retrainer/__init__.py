"""retrainer: keeps production ML models fresh.

The public API is re-exported here deliberately; submodules whose names start with an
underscore are private.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

# MLflow allows pickle deserialization unless told otherwise; no retrainer process ever needs it
# (models are skops, checked by retrainer.model_safety before loading). Forced, not defaulted:
# a stray `true` in the environment must not reopen the hole in a serving process.
os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"
# MLflow draws a "Downloading artifacts" progress bar on stderr at every model download: a
# server would print one at every load and reload. Quiet by default (a user may still ask).
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

from retrainer.errors import RetrainerError

try:
    __version__ = version("retrainer")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["RetrainerError", "__version__"]
