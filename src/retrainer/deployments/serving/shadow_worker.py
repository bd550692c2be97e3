"""The shadow worker-process protocol: where a worker process loads models from, the process
itself, and the dispatcher-side handle that starts, feeds and restarts it.

A worker process (``multiprocessing`` "spawn", never fork a threaded server) is sent the registry
URIs, the model name and versions, never a model; it loads the shadow version itself, runs at a
lower CPU priority with one BLAS thread and answers one batch per message:

* ``("warm", version)``: load ``version`` ahead of its first batch (no reply);
* ``("predict", version, columns)``: reply ``(kind, predictions, scores, latency_ms, error)``;
* ``("stop",)``: exit.

A process that dies is counted and restarted on the next batch (not in a tight loop).
"""

from __future__ import annotations

import importlib
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from retrainer.registry import Registry

log = logging.getLogger(__name__)

_LOAD_RETRY_SECONDS = 30.0  # a version that failed to load is not retried on every batch


@dataclass(frozen=True)
class ShadowModelSource:
    """Where a shadow worker process loads models from: the configured registry, by version.

    ``loader`` names a module-level function ``(source, version) -> model`` (a model has
    ``version`` and ``predict(columns) -> (predictions, scores or None)``); the default loads
    ``models:/<model_name>/<version>`` from the registry. Tests name a function that wraps
    the registry model (slow, broken); it is never read from configuration.
    """

    tracking_uri: str
    registry_uri: str | None
    model_name: str
    features: tuple[Any, ...]  # FeatureSpec
    artifact_location: str | None = None
    loader: str = "retrainer.deployments.serving.shadow_worker:load_registry_model"
    loader_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_registry(cls, registry: Registry, features: Sequence[Any], **kw: Any) -> ShadowModelSource:
        return cls(registry.tracking_uri, registry.registry_uri, registry.model_name, tuple(features),
                   getattr(registry, "artifact_location", None), **kw)


def load_registry_model(source: ShadowModelSource, version: str) -> Any:
    """The default loader: ``models:/<name>/<version>`` from the configured registry."""
    from retrainer.deployments.serving.router import registry_loader
    from retrainer.registry import Registry

    registry = Registry(source.tracking_uri, source.registry_uri, model_name=source.model_name,
                        artifact_location=source.artifact_location)
    return registry_loader(registry, list(source.features))(version)


class WorkerDied(Exception):
    """The worker process died before answering; its batch becomes error rows."""


class ShuttingDown(Exception):
    """The runner is closing: the batch in flight is dropped, not answered."""


class WorkerHost(Protocol):
    """What a worker needs of the runner that owns it (``ShadowRunner``); a protocol, so this module
    does not import the queue that imports it."""

    source: ShadowModelSource
    nice: int
    stats: Any
    _lock: Any


class ProcessWorker:
    """One shadow process, owned by one dispatcher thread: started lazily, restarted after a death."""

    def __init__(self, runner: WorkerHost, slot: int) -> None:
        self.runner = runner
        self.slot = slot
        self.proc: Any = None
        self.conn: Any = None
        self.warmed: str | None = None
        self._last_death = 0.0

    def wants_warm(self, version: str | None) -> bool:
        """A version to load, or no shadow any more while the process still runs (stop it)."""
        return version != self.warmed if version is not None else self.proc is not None

    def _ensure(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            return
        self._reap()
        # A process that keeps dying is not restarted in a tight loop.
        pause = 1.0 - (time.monotonic() - self._last_death)
        if pause > 0:
            time.sleep(pause)
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")  # never fork a threaded server
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_process_main, args=(child, self.runner.source, self.runner.nice),
                           name=f"retrainer-shadow-{self.slot}", daemon=True)
        proc.start()
        child.close()
        self.proc, self.conn, self.warmed = proc, parent, None
        with self.runner._lock:
            self.runner.stats.process_starts += 1

    def _died(self, what: str) -> WorkerDied:
        code = None if self.proc is None else self.proc.exitcode
        self._reap()
        self._last_death = time.monotonic()
        with self.runner._lock:
            self.runner.stats.process_deaths += 1
        msg = f"shadow process died {what} (exit code {code})"
        log.warning(msg)
        return WorkerDied(msg)

    def send_warm(self, version: str | None) -> None:
        if version is None:  # the shadow was stopped: free the process and its models
            self.stop()
            self.warmed = None
            return
        try:
            self._ensure()
            self.conn.send(("warm", version))
            self.warmed = version
        except (OSError, EOFError, ValueError):
            self._died("while warming up")

    def predict(self, version: str, columns: Mapping[str, list[Any]]) -> tuple[Any, Any, float | None, str | None]:
        try:
            self._ensure()
            self.conn.send(("predict", version, dict(columns)))
        except (OSError, EOFError, ValueError) as exc:
            raise self._died(f"before the batch ({type(exc).__name__})") from None
        while True:
            try:
                if self.conn.poll(0.1):
                    kind, pred, score, latency, error = self.conn.recv()
                    return pred, score, latency, error
            except (OSError, EOFError) as exc:
                raise self._died(f"during the batch ({type(exc).__name__})") from None
            if self.runner._stopping:
                raise ShuttingDown
            if not self.proc.is_alive() and not self.conn.poll(0):
                raise self._died("during the batch")

    def _reap(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        if self.proc is not None:
            self.proc.join(0.5)
            if self.proc.is_alive():
                self.proc.terminate()
                self.proc.join(2.0)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(1.0)
        self.proc = self.conn = None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.conn.send(("stop",))
        except (OSError, ValueError):
            pass
        self.proc.join(2.0)
        self._reap()


def _process_main(conn: Any, source: ShadowModelSource, nice: int) -> None:
    """The shadow worker process: load versions from the registry, answer batches, until told to stop."""
    try:
        if nice:
            os.nice(nice)
    except OSError:
        pass
    try:  # one BLAS/OpenMP thread: the shadow must not spread over the server's cores
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception:  # noqa: BLE001, S110
        pass
    module, _, name = source.loader.partition(":")
    loader = getattr(importlib.import_module(module), name)
    models: dict[str, Any] = {}
    failed: dict[str, tuple[float, str]] = {}

    def get(version: str) -> Any:
        model = models.get(version)
        if model is not None:
            return model
        when, why = failed.get(version, (0.0, ""))
        if time.monotonic() - when < _LOAD_RETRY_SECONDS:
            raise RuntimeError(why)
        try:
            model = loader(source, version, **source.loader_kwargs)
        except Exception as exc:
            why = f"loading version {version}: {type(exc).__name__}: {exc}"
            failed[version] = (time.monotonic(), why)
            raise RuntimeError(why) from exc
        models.clear()  # one shadow at a time: keep only the current version
        models[version] = model
        return model

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return  # the server went away
        if msg[0] == "stop":
            return
        if msg[0] == "warm":
            try:
                get(msg[1])
            except Exception:  # noqa: BLE001, S110 - reported with the first batch
                pass
            continue
        _, version, columns = msg
        t0 = time.perf_counter()
        try:
            pred, score = get(version).predict(columns)
            reply = ("ok", np.asarray(pred), None if score is None else np.asarray(score),
                     (time.perf_counter() - t0) * 1000.0, None)
        except Exception as exc:  # noqa: BLE001 - a failing shadow is data
            reply = ("error", None, None, (time.perf_counter() - t0) * 1000.0, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return




__all__ = ["ProcessWorker", "ShadowModelSource", "ShuttingDown", "WorkerDied", "load_registry_model"]
