"""Shadow deployment: the shadow model answers a copy of production traffic, off to the side.

The request path only calls :meth:`ShadowRunner.offer`, which never waits and never raises:
it appends the job (the feature columns the champion already used, its answer and latency) to
a bounded in-process deque, or drops and counts it when the deque is full. Nothing is pickled
or copied on the request thread.

Workers take every job queued so far, run the shadow model on them in one call, compare with
the champion's answers and hand the comparisons (or, when the shadow raised, one error row per
request) to a sink, the inference-log writer. Two isolations:

* ``process`` (default): each worker is a dispatcher thread that owns one worker *process*
  (``multiprocessing`` "spawn"). The process loads the shadow version itself from the
  configured registry (it is sent the registry URIs, the model name and the version, never a
  model) and runs at a lower CPU priority. Its model work never holds the server's GIL; the
  server only pickles one small batch per call and unpickles the answer. A process that dies
  is counted (its batch becomes error rows) and restarted on the next batch.
* ``thread``: worker threads in the server process (no extra process; a CPU-heavy shadow then
  competes with requests for the GIL). Tests use it to inject stand-in models.

A shadow model that raises is data (error rows, counted); one that takes seconds only fills the
deque, and the overflow is dropped and counted.

:func:`summarize` turns stored comparisons into the report ``retrainer shadow report`` prints.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

from retrainer.store.records import ShadowRecord

log = logging.getLogger(__name__)

_LATENCY_WINDOW = 10_000  # recent latencies kept for live percentiles
_LOAD_RETRY_SECONDS = 30.0  # a version that failed to load is not retried on every batch


@dataclass(frozen=True, slots=True)
class ShadowJob:
    """What the shadow model needs to answer one request the way the champion did."""

    model: Any  # the ServedModel to run (captured at offer time: a reload cannot mismatch versions)
    columns: Mapping[str, list[Any]]
    request_ids: Sequence[str]
    champion_version: str
    champion_prediction: Sequence[float]
    champion_score: Sequence[float] | None
    champion_latency_ms: float
    ts: datetime


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
    loader: str = "retrainer.deployments.shadow:load_registry_model"
    loader_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_registry(cls, registry: Any, features: Sequence[Any], **kw: Any) -> ShadowModelSource:
        return cls(registry.tracking_uri, registry.registry_uri, registry.model_name, tuple(features),
                   getattr(registry, "artifact_location", None), **kw)


def load_registry_model(source: ShadowModelSource, version: str) -> Any:
    """The default loader: ``models:/<name>/<version>`` from the configured registry."""
    from retrainer.deployments.router import registry_loader
    from retrainer.registry import Registry

    registry = Registry(source.tracking_uri, source.registry_uri, model_name=source.model_name,
                        artifact_location=source.artifact_location)
    return registry_loader(registry, list(source.features))(version)


@dataclass
class ShadowStats:
    offered: int = 0
    sampled_out: int = 0
    enqueued: int = 0
    dropped: int = 0  # the queue was full (plus jobs still queued at shutdown)
    completed: int = 0  # jobs answered by the shadow model
    errors: int = 0  # jobs the shadow model (or its process) failed on
    rows: int = 0
    agreements: int = 0
    done: int = 0  # jobs finished one way or another (answered, failed, dropped at shutdown)
    process_starts: int = 0
    process_deaths: int = 0
    last_error: str | None = None
    shadow_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))
    champion_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))


class _WorkerDied(Exception):
    pass


class _ShuttingDown(Exception):
    pass


class ShadowRunner:
    """A bounded queue and the workers (processes or threads) running the shadow model."""

    def __init__(
        self,
        model_name: str,
        *,
        sink: Callable[[list[ShadowRecord]], None],
        queue_size: int = 1000,
        workers: int = 1,
        rng: random.Random | None = None,
        max_batch: int = 256,
        isolation: Literal["process", "thread"] = "thread",
        source: ShadowModelSource | None = None,
        nice: int = 10,
    ) -> None:
        if isolation == "process" and source is None:
            raise ValueError("isolation='process' needs a ShadowModelSource (where the process loads models from)")
        self.model_name = model_name
        self.sink = sink
        self.queue_size = queue_size
        self.workers = workers
        self.max_batch = max_batch
        self.isolation = isolation
        self.source = source
        self.nice = nice
        self.stats = ShadowStats()
        self._pending: deque[ShadowJob] = deque()
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stopping = False
        self._warm: str | None = None
        self._threads: list[threading.Thread] = []
        self._procs: list[Any] = []
        self._random = (rng or random.Random()).random

    # -- request path: never waits, never raises ----------------------------------------------

    def offer(self, job: ShadowJob, sample: float = 1.0) -> bool:
        """Queue ``job`` for a ``sample`` share of calls; False when sampled out or dropped."""
        try:
            s = self.stats
            with self._lock:
                s.offered += 1
                if sample < 1.0 and self._random() >= sample:
                    s.sampled_out += 1
                    return False
                if len(self._pending) >= self.queue_size or self._stopping:
                    s.dropped += 1
                    return False
                self._pending.append(job)
                s.enqueued += 1
                self._cond.notify()
            return True
        except Exception:  # noqa: BLE001 - the shadow must never break production
            return False

    def depth(self) -> int:
        return len(self._pending)

    def warm(self, version: str | None) -> None:
        """Have the worker processes load ``version`` ahead of its first job (never waits)."""
        if self.isolation != "process" or version is None:
            return
        with self._lock:
            self._warm = str(version)
            self._cond.notify_all()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        self._stopping = False
        target = self._run_process if self.isolation == "process" else self._run_thread
        for i in range(self.workers):
            t = threading.Thread(target=target, args=(i,), name=f"retrainer-shadow-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers; jobs still queued are dropped (and counted): shadow is best-effort."""
        if not self._threads:
            return
        with self._lock:
            self._stopping = True
            left = len(self._pending)
            self._pending.clear()
            self.stats.dropped += left
            self.stats.done += left
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:  # a thread-mode shadow model stuck in predict: daemon threads, abandoned
            log.warning("shadow workers still busy at shutdown (abandoned): %s", ", ".join(alive))
        self._threads = []

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Until every queued job was answered and handed to the sink (tests, demo); False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                busy = self.stats.enqueued - self.stats.done
            if busy <= 0:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)

    # -- workers ------------------------------------------------------------------------------

    def _take(self, want_warm: Callable[[str | None], bool] | None = None) -> list[ShadowJob] | None:
        """Every queued job (up to max_batch), waiting for one; [] for a warm-up; None to stop."""
        with self._cond:
            while not self._pending:
                if self._stopping:
                    return None
                if want_warm is not None and want_warm(self._warm):
                    return []
                self._cond.wait(0.5)
            n = min(len(self._pending), self.max_batch)
            return [self._pending.popleft() for _ in range(n)]

    def _run_thread(self, _: int) -> None:
        while (jobs := self._take()) is not None:
            by_model: dict[int, list[ShadowJob]] = {}
            for j in jobs:
                by_model.setdefault(id(j.model), []).append(j)
            for group in by_model.values():
                model = group[0].model
                t0 = time.perf_counter()
                try:
                    pred, score = model.predict(_concat(group))
                except Exception as exc:  # noqa: BLE001 - a failing shadow is data, not an incident
                    self._finish(group, model.version, None, None, (time.perf_counter() - t0) * 1000.0,
                                 f"{type(exc).__name__}: {exc}")
                    continue
                self._finish(group, model.version, pred, score, (time.perf_counter() - t0) * 1000.0, None)

    def _run_process(self, slot: int) -> None:
        worker = _ProcessWorker(self, slot)
        try:
            while (jobs := self._take(worker.wants_warm)) is not None:
                if not jobs:
                    worker.send_warm(self._warm)
                    continue
                by_version: dict[str, list[ShadowJob]] = {}
                for j in jobs:
                    by_version.setdefault(str(j.model.version), []).append(j)
                for version, group in by_version.items():
                    if self._stopping:
                        self._abandon(group)
                        continue
                    try:
                        pred, score, latency, error = worker.predict(version, _concat(group))
                    except _ShuttingDown:
                        self._abandon(group)
                        continue
                    except _WorkerDied as exc:
                        self._finish(group, version, None, None, None, str(exc))
                        continue
                    self._finish(group, version, pred, score, latency, error)
        finally:
            worker.stop()

    def _abandon(self, jobs: list[ShadowJob]) -> None:
        with self._lock:
            self.stats.dropped += len(jobs)
            self.stats.done += len(jobs)

    def _finish(
        self, jobs: list[ShadowJob], version: str, pred: Any, score: Any, latency: float | None, error: str | None
    ) -> None:
        records: list[ShadowRecord] = []
        agree = 0
        at = 0
        for job in jobs:
            cs = job.champion_score
            for i, rid in enumerate(job.request_ids):
                cp = float(job.champion_prediction[i])
                sp = None if error is not None else float(pred[at])
                agree += cp == sp
                records.append(ShadowRecord(
                    model_name=self.model_name, request_id=rid, champion_version=job.champion_version,
                    shadow_version=version, champion_prediction=cp, shadow_prediction=sp, ts=job.ts,
                    champion_score=None if cs is None else float(cs[i]),
                    shadow_score=None if error is not None or score is None else float(score[at]),
                    latency_ms=latency, champion_latency_ms=job.champion_latency_ms, error=error,
                ))
                at += 1
        with self._lock:
            s = self.stats
            if error is None:
                s.completed += len(jobs)
                s.rows += len(records)
                s.agreements += agree
                if latency is not None:
                    s.shadow_latency_ms.extend([latency] * len(jobs))
            else:
                s.errors += len(jobs)
                s.last_error = error
            s.champion_latency_ms.extend(j.champion_latency_ms for j in jobs)
        try:
            self.sink(records)
        except Exception as exc:  # noqa: BLE001
            with self._lock:
                self.stats.last_error = f"sink: {type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                self.stats.done += len(jobs)

    # -- reporting ----------------------------------------------------------------------------

    def live(self) -> dict[str, Any]:
        """Counters and recent latency percentiles of this server process (both models)."""
        with self._lock:
            s = self.stats
            shadow_lat = np.fromiter(s.shadow_latency_ms, dtype=np.float64)
            champ_lat = np.fromiter(s.champion_latency_ms, dtype=np.float64)
            out = {
                "isolation": self.isolation,
                "offered": s.offered, "sampled_out": s.sampled_out, "enqueued": s.enqueued,
                "dropped": s.dropped, "completed": s.completed, "errors": s.errors, "rows": s.rows,
                "agreement_rate": s.agreements / s.rows if s.rows else None,
                "last_error": s.last_error, "queue_depth": len(self._pending),
                "process_starts": s.process_starts, "process_deaths": s.process_deaths,
            }
        attempted = out["completed"] + out["errors"]
        out["error_rate"] = out["errors"] / attempted if attempted else None
        out["latency_ms"] = {"shadow": _pcts(shadow_lat), "champion": _pcts(champ_lat)}
        return out


def _concat(jobs: list[ShadowJob]) -> Mapping[str, list[Any]]:
    if len(jobs) == 1:
        return jobs[0].columns
    return {name: [v for j in jobs for v in j.columns[name]] for name in jobs[0].columns}


class _ProcessWorker:
    """One shadow process, owned by one dispatcher thread: started lazily, restarted after a death."""

    def __init__(self, runner: ShadowRunner, slot: int) -> None:
        self.runner = runner
        self.slot = slot
        self.proc: Any = None
        self.conn: Any = None
        self.warmed: str | None = None
        self._last_death = 0.0

    def wants_warm(self, version: str | None) -> bool:
        return version is not None and version != self.warmed

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

    def _died(self, what: str) -> _WorkerDied:
        code = None if self.proc is None else self.proc.exitcode
        self._reap()
        self._last_death = time.monotonic()
        with self.runner._lock:
            self.runner.stats.process_deaths += 1
        msg = f"shadow process died {what} (exit code {code})"
        log.warning(msg)
        return _WorkerDied(msg)

    def send_warm(self, version: str | None) -> None:
        if version is None:
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
                raise _ShuttingDown
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


def _pcts(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p99": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": float(p50), "p99": float(p99)}


def summarize(rows: Sequence[ShadowRecord]) -> dict[str, Any]:
    """Stored comparisons per shadow version: agreement, score deltas, latency of both models, errors."""
    by_version: dict[str, list[ShadowRecord]] = {}
    for r in rows:
        by_version.setdefault(r.shadow_version, []).append(r)
    out: dict[str, Any] = {}
    for version, rs in sorted(by_version.items(), key=lambda kv: (0, int(kv[0]), "") if kv[0].isdigit() else (1, 0, kv[0])):
        ok = [r for r in rs if r.error is None and r.shadow_prediction is not None]
        errors = [r for r in rs if r.error is not None]
        cp = np.array([r.champion_prediction for r in ok], dtype=np.float64)
        sp = np.array([r.shadow_prediction for r in ok], dtype=np.float64)
        cs = np.array([np.nan if r.champion_score is None else r.champion_score for r in ok], dtype=np.float64)
        ss = np.array([np.nan if r.shadow_score is None else r.shadow_score for r in ok], dtype=np.float64)
        lat = np.array([r.latency_ms for r in ok if r.latency_ms is not None], dtype=np.float64)
        champ_lat = np.array([r.champion_latency_ms for r in rs if r.champion_latency_ms is not None], dtype=np.float64)
        delta = (ss - cs)[~(np.isnan(ss) | np.isnan(cs))]
        out[version] = {
            "n": len(rs),
            "compared": len(ok),
            "errors": len(errors),
            "error_rate": len(errors) / len(rs),
            "last_error": errors[-1].error if errors else None,
            "champion_versions": sorted({r.champion_version for r in rs}),
            "agreement_rate": float(np.mean(cp == sp)) if ok else None,
            "score_delta": None if delta.size == 0 else {
                "mean": float(delta.mean()),
                "mean_abs": float(np.abs(delta).mean()),
                "p50_abs": float(np.percentile(np.abs(delta), 50)),
                "p99_abs": float(np.percentile(np.abs(delta), 99)),
                "max_abs": float(np.abs(delta).max()),
            },
            "shadow_latency_ms": _pcts(lat),
            "champion_latency_ms": _pcts(champ_lat),
            "first": min(r.ts for r in rs),
            "last": max(r.ts for r in rs),
        }
    return out


def now() -> datetime:
    return datetime.now(UTC)


# -- the shadow switch, kept in the promotion ledger ---------------------------------------------
#
# ``shadow_start`` (to_version = the shadow version) turns shadowing on, ``shadow_stop`` off;
# the latest of the two wins. The sampling share is the entry's ``details["sample"]``; without
# it, ``rollout.shadow.sample`` applies. Rows written before revision 0004 carried the share in
# the reason as ``[sample=0.25]``; that is still read.

SHADOW_ACTIONS = ("shadow_start", "shadow_stop")


def _valid_sample(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if 0.0 < v <= 1.0 else None


def _legacy_sample(reason: str) -> float | None:
    import re

    m = re.search(r"\[sample=([0-9]*\.?[0-9]+(?:e-?\d+)?)\]", reason or "")
    return _valid_sample(m.group(1)) if m else None


def shadow_target(
    entries: Sequence[Any], *, rollout_mode: str, challenger: str | None, default_sample: float
) -> tuple[str | None, float]:
    """(shadow version or None, sample share) from ledger entries (oldest first).

    With no shadow entry at all and ``rollout.mode: shadow``, the ``challenger`` alias is shadowed.
    """
    last = next((e for e in reversed(entries) if e.action in SHADOW_ACTIONS), None)
    if last is None:
        return (challenger, default_sample) if rollout_mode == "shadow" and challenger else (None, default_sample)
    if last.action == "shadow_stop":
        return None, default_sample
    version = last.to_version or challenger
    details = getattr(last, "details", None) or {}
    sample = _valid_sample(details.get("sample")) if "sample" in details else _legacy_sample(last.reason)
    return version, default_sample if sample is None else sample


__all__ = [
    "SHADOW_ACTIONS",
    "ShadowJob",
    "ShadowModelSource",
    "ShadowRunner",
    "ShadowStats",
    "load_registry_model",
    "shadow_target",
    "summarize",
]
