"""The SQL store: inference log, labels, audit trail, runs, promotion ledger, A/B, shadow,
reference profiles. SQLite (WAL) by default, PostgreSQL with the same code.

>>> from retrainer.store import Store
>>> store = Store.open("sqlite:///:memory:"); store.init()
>>> store.current_revision() == store.head_revision()
True
"""

from __future__ import annotations

from retrainer.store.compaction import CompactionResult
from retrainer.store.records import (
    ABTest,
    Evaluation,
    FeatureWindow,
    LabelledWindow,
    LabelRecord,
    LabelWriteResult,
    LedgerEntry,
    PredictionRecord,
    RetrainRun,
    ShadowRecord,
    ShadowWindow,
    WriteResult,
)
from retrainer.store.store import Store

__all__ = [
    "ABTest",
    "CompactionResult",
    "Evaluation",
    "FeatureWindow",
    "LabelRecord",
    "LabelWriteResult",
    "LabelledWindow",
    "LedgerEntry",
    "PredictionRecord",
    "RetrainRun",
    "ShadowRecord",
    "ShadowWindow",
    "Store",
    "WriteResult",
]
