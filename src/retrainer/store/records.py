"""Plain frozen dataclasses that go into and come out of the store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np


def to_epoch(when: datetime) -> float:
    """Aware datetime -> epoch seconds; a naive one is taken to be UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def from_epoch(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One served prediction. ``ts`` is tz-aware (UTC assumed if naive)."""

    request_id: str
    features: Mapping[str, Any]
    prediction: float
    ts: datetime
    model_version: str | None = None
    unit_id: str | None = None
    arm: str | None = None
    score: float | None = None
    ab_test_id: int | None = None


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """Ground truth for a request; ``ts`` is when the label became known."""

    request_id: str
    label: float
    ts: datetime


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int
    duplicate_ids: tuple[str, ...] = ()  # request ids already stored (or repeated in the batch): not written
    new_assignments: int = 0  # A/B units new to their test, when assignments were written in the same transaction


@dataclass(frozen=True, slots=True)
class LabelWriteResult:
    written: int
    # Request ids with no stored prediction (yet): the labels are kept and matched when it comes.
    unknown_request_ids: list[str] = field(default_factory=list)
    # Labels whose time was before their prediction's: stored at the prediction's time (a label
    # cannot be known before the prediction it labels; a negative delay would skew every window).
    clamped_request_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FeatureWindow:
    """Feature columns of the predictions in a window, ordered by ``ts``.

    ``ts`` is float64 epoch seconds; numeric columns are float64 (NaN = missing); categorical
    columns are object arrays (None = missing). ``prediction_ids`` joins back to predictions.
    """

    ts: np.ndarray
    columns: dict[str, np.ndarray]
    prediction_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True)
class LabelledWindow:
    """Predictions of a window that have a label known at ``as_of``."""

    y_true: np.ndarray
    y_pred: np.ndarray
    score: np.ndarray  # NaN where the prediction had no score
    ts: np.ndarray
    n_predictions: int  # every prediction in the window, labelled or not

    def __len__(self) -> int:
        return int(self.y_true.shape[0])

    @property
    def coverage(self) -> float:
        """Share of the window's predictions that are labelled (0 when there are none)."""
        return len(self) / self.n_predictions if self.n_predictions else 0.0


@dataclass(frozen=True, slots=True)
class Evaluation:
    id: int
    check_id: str
    model_name: str
    evaluated_at: datetime
    trigger: str
    fired: bool
    status: str
    value: float | None
    threshold: float | None
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RetrainRun:
    id: int
    model_name: str
    flow_run_id: str | None
    reasons: list[str]
    status: str
    started_at: datetime
    finished_at: datetime | None
    metrics: dict[str, Any] | None
    version: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    id: int
    model_name: str
    action: str
    from_version: str | None
    to_version: str | None
    actor: str
    reason: str
    run_id: int | None
    at: datetime
    details: dict[str, Any] | None = None  # structured facts of the step (e.g. {"sample": 0.25} of shadow_start)


@dataclass(frozen=True, slots=True)
class ABTest:
    id: int
    model_name: str
    champion_version: str
    challenger_version: str
    split: float
    salt: str
    status: str
    started_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    config: dict[str, Any] | None
    result: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    """One request answered by the champion and sent to the shadow model.

    ``error`` is the shadow model's failure for this request; its prediction is None then.
    ``latency_ms`` is the shadow call that answered it (a batched call: the batch's),
    ``champion_latency_ms`` the champion's prediction of the request.
    """

    model_name: str
    request_id: str
    champion_version: str
    shadow_version: str
    champion_prediction: float
    shadow_prediction: float | None
    ts: datetime
    champion_score: float | None = None
    shadow_score: float | None = None
    latency_ms: float | None = None
    champion_latency_ms: float | None = None
    error: str | None = None
    id: int | None = None  # set when read back


@dataclass(frozen=True)
class ShadowWindow:
    """A shadow version's comparisons in a window as columns, with each request's label as known
    at ``as_of`` (NaN: not known): what the rollout judges, read in one query.

    ``shadow_prediction`` / ``shadow_score`` are NaN where the shadow failed (``failed``) or gave
    no score; ``label_ts`` is the label's time in epoch seconds (NaN without a label)."""

    ts: np.ndarray
    champion_prediction: np.ndarray
    shadow_prediction: np.ndarray
    champion_score: np.ndarray
    shadow_score: np.ndarray
    latency_ms: np.ndarray
    champion_latency_ms: np.ndarray
    failed: np.ndarray  # bool
    label: np.ndarray
    label_ts: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    @classmethod
    def from_records(cls, rows: Sequence[ShadowRecord], labels: Mapping[str, float],
                     label_ts: Mapping[str, float] | None = None) -> ShadowWindow:
        """The same columns from records and a label mapping (tests, callers holding records)."""
        def col(values: Any) -> np.ndarray:
            return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

        return cls(
            ts=np.array([to_epoch(r.ts) for r in rows], dtype=np.float64),
            champion_prediction=col(r.champion_prediction for r in rows),
            shadow_prediction=col(None if r.error is not None else r.shadow_prediction for r in rows),
            champion_score=col(r.champion_score for r in rows),
            shadow_score=col(None if r.error is not None else r.shadow_score for r in rows),
            latency_ms=col(r.latency_ms for r in rows),
            champion_latency_ms=col(r.champion_latency_ms for r in rows),
            failed=np.array([r.error is not None for r in rows], dtype=bool),
            label=col(labels.get(r.request_id) for r in rows),
            label_ts=col((label_ts or {}).get(r.request_id) for r in rows),
        )
