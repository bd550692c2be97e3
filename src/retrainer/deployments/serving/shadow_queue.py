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

The worker-process protocol is :mod:`retrainer.deployments.serving.shadow_worker`; the report from stored
comparisons :mod:`retrainer.deployments.rollout.shadow_report`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

from retrainer.deployments.rollout.shadow_report import latency_percentiles
from retrainer.deployments.serving.shadow_worker import ProcessWorker, ShadowModelSource, ShuttingDown, WorkerDied
from retrainer.store.records import ShadowRecord

log = logging.getLogger(__name__)

_LATENCY_WINDOW = 10_000  # recent latencies kept for live percentiles


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
        """Have the worker processes load ``version`` ahead of its first job (never waits).

        ``None`` (the shadow was stopped) ends the worker processes: a loaded model holds
        hundreds of MB that must not stay until the server exits. A later shadow starts them again.
        """
        if self.isolation != "process":
            return
        with self._lock:
            self._warm = None if version is None else str(version)
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
        worker = ProcessWorker(self, slot)
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
                    except ShuttingDown:
                        self._abandon(group)
                        continue
                    except WorkerDied as exc:
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
        # One predict served the whole batch: each request is charged its share of it, so the
        # shadow's latency compares with the champion's per-request latency like for like
        # (charging every request the batch's time made a batch of 20 look 20x slower).
        total_rows = sum(len(job.request_ids) for job in jobs) or 1
        shares = [None if latency is None else latency * len(job.request_ids) / total_rows for job in jobs]
        for job, share in zip(jobs, shares, strict=True):
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
                    latency_ms=share, champion_latency_ms=job.champion_latency_ms, error=error,
                ))
                at += 1
        with self._lock:
            s = self.stats
            if error is None:
                s.completed += len(jobs)
                s.rows += len(records)
                s.agreements += agree
                s.shadow_latency_ms.extend(x for x in shares if x is not None)
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
        out["latency_ms"] = {"shadow": latency_percentiles(shadow_lat), "champion": latency_percentiles(champ_lat)}
        return out


def _concat(jobs: list[ShadowJob]) -> Mapping[str, list[Any]]:
    if len(jobs) == 1:
        return jobs[0].columns
    return {name: [v for j in jobs for v in j.columns[name]] for name in jobs[0].columns}


__all__ = ["ShadowJob", "ShadowRunner", "ShadowStats"]
