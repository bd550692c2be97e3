"""Which model answers which request, and reloading it when the registry or the store says so.

:class:`ModelRouter` keeps one immutable :class:`Routing` (champion, A/B arms, shadow). A
background thread re-reads the wanted state (aliases, running A/B test, shadow switch) every
few seconds; when it changed, the new versions are loaded *beside* the old ones and the
routing reference is swapped in one assignment. A request holds the routing it started with,
so a reload never fails or mixes models in an in-flight request.

:class:`ServedModel` is the prediction interface the service uses: columns in, predictions and
(for binary classifiers) the positive-class score out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from retrainer.config import FeatureSpec
from retrainer.deployments.rollout.ab import threshold

if TYPE_CHECKING:
    from retrainer.registry import Registry

log = logging.getLogger(__name__)


class ServedModel:
    """One loaded model version.

    A scikit-learn classifier is called directly (``predict_proba`` once: the prediction is the
    most probable class, the score the positive-class probability of a binary model); anything
    else goes through its MLflow pyfunc ``predict``. Inputs are validated by the service against
    the configured features before they get here.
    """

    def __init__(self, version: str, pyfunc: Any, features: Sequence[FeatureSpec], raw: Any | None = None) -> None:
        self.version = str(version)
        self.pyfunc = pyfunc
        self.features = list(features)
        self._numeric = {f.name for f in self.features if f.type == "numeric"}
        names = _signature_names(pyfunc)
        self.input_names = names or [f.name for f in self.features]
        self.raw = raw
        self._classes = None
        if raw is not None and hasattr(raw, "predict_proba") and hasattr(raw, "classes_"):
            self._classes = np.asarray(raw.classes_)

    def __repr__(self) -> str:
        return f"ServedModel(version={self.version!r})"

    @property
    def classes(self) -> np.ndarray | None:
        """The classifier's classes (labels must be one of them); None when not a classifier."""
        return self._classes

    def frame(self, columns: Mapping[str, list[Any]]) -> pd.DataFrame:
        data: dict[str, Any] = {}
        for name in self.input_names:
            values = columns[name]
            if name in self._numeric:
                try:
                    data[name] = np.array(values, dtype=np.float64)
                except TypeError:  # None among the values
                    data[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            else:
                arr = np.empty(len(values), dtype=object)
                arr[:] = values
                data[name] = arr
        return pd.DataFrame(data, copy=False)

    def predict(self, columns: Mapping[str, list[Any]]) -> tuple[np.ndarray, np.ndarray | None]:
        X = self.frame(columns)
        if self._classes is not None:
            proba = np.asarray(self.raw.predict_proba(X))
            pred = self._classes[proba.argmax(axis=1)]
            score = proba[:, 1] if proba.shape[1] == 2 else None
            return pred, score
        if self.raw is not None and hasattr(self.raw, "predict"):
            return np.asarray(self.raw.predict(X)), None
        return np.asarray(self.pyfunc.predict(X)), None


def _signature_names(pyfunc: Any) -> list[str] | None:
    try:
        schema = pyfunc.metadata.get_input_schema()
    except Exception:  # noqa: BLE001 - no metadata (a test double): use the configured order
        return None
    if schema is None:
        return None
    try:
        return list(schema.input_names())
    except Exception:  # noqa: BLE001
        return None


def registry_loader(registry: Registry, features: Sequence[FeatureSpec]) -> Callable[[str], ServedModel]:
    """Load versions from the configured registry (``models:/<name>/<version>`` only)."""

    def load(version: str) -> ServedModel:
        pyfunc = registry.load_model(version)
        try:
            raw = pyfunc.get_raw_model()
        except Exception:  # noqa: BLE001 - not every flavour exposes its raw model
            raw = None
        return ServedModel(version, pyfunc, features, raw=raw)

    return load


@dataclass(frozen=True)
class WantedState:
    """What should be served, as read from the registry and the store."""

    champion: str | None
    ab_test_id: int | None = None
    ab_champion: str | None = None
    ab_challenger: str | None = None
    ab_salt: str | None = None
    ab_split: float | None = None
    shadow: str | None = None
    shadow_sample: float = 1.0


@dataclass(frozen=True)
class ActiveAB:
    test_id: int
    salt: str
    split: float
    threshold: int  # buckets below go to the challenger
    champion: ServedModel
    challenger: ServedModel


@dataclass(frozen=True)
class Routing:
    champion: ServedModel
    ab: ActiveAB | None
    shadow: ServedModel | None
    shadow_sample: float
    wanted: WantedState

    def describe(self) -> dict[str, Any]:
        return {
            "champion": self.champion.version,
            "ab": None if self.ab is None else {
                "test_id": self.ab.test_id, "split": self.ab.split,
                "champion": self.ab.champion.version, "challenger": self.ab.challenger.version,
            },
            "shadow": None if self.shadow is None else {"version": self.shadow.version, "sample": self.shadow_sample},
        }


@dataclass
class RouterStats:
    reloads: int = 0
    reload_errors: int = 0
    last_error: str | None = None
    last_check: float | None = None
    loaded_versions: list[str] = field(default_factory=list)


class ModelRouter:
    """Holds the current :class:`Routing`; :meth:`refresh` moves it to the wanted state."""

    def __init__(
        self,
        loader: Callable[[str], ServedModel],
        read_state: Callable[[], WantedState],
        *,
        interval: float = 5.0,
        on_change: Callable[[Routing], None] | None = None,
    ) -> None:
        self.loader = loader
        self.on_change = on_change  # called after each swap (e.g. to warm the shadow process up)
        self.read_state = read_state
        self.interval = interval
        self.routing: Routing | None = None
        self.stats = RouterStats()
        self._cache: dict[str, ServedModel] = {}
        self._applied: WantedState | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _get(self, version: str, errors: list[str]) -> ServedModel | None:
        model = self._cache.get(version)
        if model is None:
            try:
                model = self.loader(version)
            except Exception as exc:  # noqa: BLE001 - keep serving what we have
                errors.append(f"version {version}: {type(exc).__name__}: {exc}")
                return None
            self._cache[version] = model
        return model

    def refresh(self) -> bool:
        """Re-read the wanted state and swap the routing if it changed; True when swapped."""
        with self._refresh_lock:
            try:
                wanted = self.read_state()
            except Exception as exc:  # noqa: BLE001 - registry or store briefly unreachable
                self.stats.reload_errors += 1
                self.stats.last_error = f"reading state: {type(exc).__name__}: {exc}"
                log.warning("cannot read serving state: %s", exc)
                return False
            self.stats.last_check = time.time()
            if wanted == self._applied and self.routing is not None:
                return False
            errors: list[str] = []
            champion = self._get(wanted.champion, errors) if wanted.champion else None
            if champion is None:
                if wanted.champion is None:
                    errors.append("no champion: the registry has no 'champion' alias for this model")
                self._fail(errors)
                return False
            ab = None
            if wanted.ab_test_id is not None and wanted.ab_champion and wanted.ab_challenger:
                a = self._get(wanted.ab_champion, errors)
                b = self._get(wanted.ab_challenger, errors)
                if a is not None and b is not None:
                    ab = ActiveAB(wanted.ab_test_id, wanted.ab_salt or "", float(wanted.ab_split or 0.0),
                                  threshold(float(wanted.ab_split or 0.5)), a, b)
            shadow = self._get(wanted.shadow, errors) if wanted.shadow else None
            self.routing = Routing(champion, ab, shadow, wanted.shadow_sample, wanted)
            keep = {m.version for m in (champion, shadow, ab and ab.champion, ab and ab.challenger) if m is not None}
            self._cache = {v: m for v, m in self._cache.items() if v in keep}
            self.stats.loaded_versions = sorted(keep)
            self.stats.reloads += 1
            if errors:
                self._fail(errors)  # partly applied: try the rest again next time
            else:
                self._applied = wanted
            log.info("serving %s", self.routing.describe())
            if self.on_change is not None:
                try:
                    self.on_change(self.routing)
                except Exception:  # noqa: BLE001 - a hook must not undo a swap
                    log.exception("routing change hook failed")
            return True

    def _fail(self, errors: list[str]) -> None:
        self.stats.reload_errors += 1
        self.stats.last_error = "; ".join(errors)
        self._applied = None
        log.warning("model reload incomplete: %s", self.stats.last_error)

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="retrainer-model-router", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None


__all__ = ["ActiveAB", "ModelRouter", "Routing", "ServedModel", "WantedState", "registry_loader"]
