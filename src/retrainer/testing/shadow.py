"""A simulated shadow: two binary classifiers answering the same requests, labels days late
(the rollout tests and bench/rollout_advance.py drive the real ``advance`` with it).

Each model is calibrated by construction: on each request it is right with probability ``q``
(its confidence, drawn from a Beta with the model's accuracy as mean), and its score is ``q``
for the class it answered. The identity calibration map (Platt on the logit, a=1, b=0) is then
each version's true map. Rows go into a real store as the shadow worker writes them
(``ShadowRecord``), the champion's predictions into the inference log, labels arrive
``label_delay`` after their request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from retrainer.config import FeatureSpec
from retrainer.stats.calibration import CalibrationMap
from retrainer.store import LabelRecord, ShadowRecord, Store

IDENTITY = CalibrationMap("platt", a=1.0, b=0.0, logit_input=True)
FEATURES = [FeatureSpec(name="x")]


def answers(rng: np.random.Generator, y: np.ndarray, accuracy: float, concentration: float = 6.0):
    """(prediction, score of the positive class) of a calibrated model with this accuracy."""
    q = rng.beta(accuracy * concentration, (1 - accuracy) * concentration, y.size)
    right = rng.random(y.size) < q
    pred = np.where(right, y, 1 - y).astype(float)
    score = np.where(pred == 1, q, 1 - q)
    return pred, score


@dataclass
class ShadowWorld:
    store: Store
    model: str
    champion: str
    challenger: str
    rng: np.random.Generator
    label_delay: timedelta = timedelta(days=3)
    pending: list[tuple[str, float, datetime]] | None = None
    sent: int = 0

    def __post_init__(self) -> None:
        self.pending = []

    def calibrations(self, champion: CalibrationMap | None = IDENTITY, challenger: CalibrationMap | None = IDENTITY) -> None:
        for version, cal in ((self.champion, champion), (self.challenger, challenger)):
            if cal is not None:
                self.store.save_reference_profile(self.model, version, {"calibration": cal.to_dict()})

    def day(self, start: datetime, n: int, *, champion_acc: float, challenger_acc: float,
            invert_challenger: bool = False, shadow_version: str | None = None, champion_version: str | None = None) -> None:
        """``n`` shadowed requests spread over the day from ``start``; their labels queue up."""
        ts = [start + timedelta(seconds=float(s)) for s in np.sort(self.rng.uniform(0, 86_000, n))]
        y = self.rng.integers(0, 2, n).astype(float)
        cp, cs = answers(self.rng, y, champion_acc)
        sp, ss = answers(self.rng, y, challenger_acc)
        if invert_challenger:
            sp, ss = 1 - sp, 1 - ss
        ids = [f"r{self.sent + i}" for i in range(n)]
        self.sent += n
        champion = champion_version or self.champion
        rows = [ShadowRecord(self.model, rid, champion, shadow_version or self.challenger, float(a), float(b), t,
                             champion_score=float(c), shadow_score=float(d), latency_ms=1.0, champion_latency_ms=1.0)
                for rid, a, b, c, d, t in zip(ids, cp, sp, cs, ss, ts)]
        self.store.record_shadow(rows)
        frame = pd.DataFrame({"request_id": ids, "ts": ts, "prediction": cp, "score": cs, "model_version": champion,
                              "x": self.rng.normal(size=n)})
        self.store.log_prediction_frame(self.model, frame, FEATURES)
        self.pending.extend((rid, float(label), t + self.label_delay) for rid, label, t in zip(ids, y, ts))

    def deliver(self, now: datetime) -> int:
        """Write the labels that have arrived by ``now``."""
        due = [p for p in self.pending if p[2] <= now]
        self.pending = [p for p in self.pending if p[2] > now]
        if due:
            self.store.log_labels([LabelRecord(rid, label, at) for rid, label, at in due], received_at=now)
        return len(due)


@dataclass
class _Version:
    version: str


@dataclass
class AliasRegistry:
    """An in-memory stand-in for :class:`retrainer.registry.Registry` with what the rollout code
    uses of it (aliases; every version loadable): enough to drive ``advance`` with no MLflow."""

    model_name: str
    aliases: dict[str, str] | None = None

    def __post_init__(self) -> None:
        self.aliases = {}

    def alias_version(self, alias: str) -> str | None:
        return self.aliases.get(alias)  # type: ignore[union-attr]

    def set_alias(self, alias: str, version: str) -> None:
        self.aliases[alias] = str(version)  # type: ignore[index]

    def delete_alias(self, alias: str) -> None:
        self.aliases.pop(alias, None)  # type: ignore[union-attr]

    def get_version(self, version: str) -> _Version:
        return _Version(str(version))

    def check_loadable(self, version: str) -> str:
        return str(version)


def record_offline_delta(store: Store, model: str, version: str, delta: float, se: float, *, at: datetime) -> None:
    """Record ``version``'s paired holdout difference as the retrain flow does (a finished run's
    ``metrics["offline_delta"]``), so the rollout's prior reads it through ``Store.offline_delta``."""
    run_id = store.start_run(model, flow_run_id=None, reasons=["simulated"], started_at=at)
    store.finish_run(run_id, status="success", metrics={"offline_delta": {"mean": delta, "se": se}}, version=version,
                     error=None, finished_at=at)
