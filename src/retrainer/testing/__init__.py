"""Testing aids shipped with retrainer, for its own suite and for trigger plugin authors.

* :func:`check_trigger` — the conformance kit (raises :class:`ConformanceError`);
* :class:`InMemoryWindowSource`, :func:`make_context`, :func:`standard_contexts` — a store stand-in
  with the store's exact window semantics, and the scenarios the kit uses.
"""

from __future__ import annotations

from retrainer.testing.conformance import ConformanceError, check_trigger
from retrainer.testing.fakes import (
    DEFAULT_NOW,
    STANDARD_FEATURES,
    InMemoryWindowSource,
    labelled_log,
    make_context,
    standard_contexts,
    standard_retrains,
    synthetic_log,
)

__all__ = [
    "DEFAULT_NOW",
    "STANDARD_FEATURES",
    "ConformanceError",
    "InMemoryWindowSource",
    "check_trigger",
    "labelled_log",
    "make_context",
    "standard_contexts",
    "standard_retrains",
    "synthetic_log",
]
