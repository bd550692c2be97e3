"""Shadow deployment: the shadow model answers a copy of production traffic, off to the side.

The request path only calls :meth:`ShadowRunner.offer`, which never waits and never raises:
the job goes onto a bounded queue, or is dropped and counted when the queue is full. Worker
threads run the shadow model on every job queued so far in one call, compare it with the
champion's answer, and hand the comparison to a sink (the inference-log writer); the recorded
shadow latency is that of the (batched) call. A shadow model that raises is counted as an error; one
that takes seconds only fills the queue, and the overflow is dropped.

A pure-Python shadow model that burns CPU still competes for the GIL with the request path;
keep ``workers`` small (the default is 2), or give the shadow its own process.

:func:`summarize` turns stored comparisons into the report ``retrainer shadow report`` prints.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from retrainer.store.records import ShadowRecord

log = logging.getLogger(__name__)

_STOP = object()
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
    dropped: int = 0
    completed: int = 0
    errors: int = 0
    rows: int = 0
    agreements: int = 0
    last_error: str | None = None
    shadow_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))
    champion_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))


class ShadowRunner:
    """A bounded queue and worker threads running the shadow model."""

    def __init__(
        self,
        model_name: str,
        *,
        sink: Callable[[list[ShadowRecord]], None],
        queue_size: int = 1000,
        workers: int = 2,
        rng: random.Random | None = None,
        max_batch: int = 64,
    ) -> None:
        self.model_name = model_name
        self.sink = sink
        self.workers = workers
        self.max_batch = max_batch
        self.stats = ShadowStats()
        self._q: queue.Queue[Any] = queue.Queue(maxsize=queue_size)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._random = (rng or random.Random()).random

    # -- request path: never waits, never raises ----------------------------------------------

    def offer(self, job: ShadowJob, sample: float = 1.0) -> bool:
        """Queue ``job`` for a ``sample`` share of calls; False when sampled out or dropped."""
        try:
            self.stats.offered += 1
            if sample < 1.0 and self._random() >= sample:
                self.stats.sampled_out += 1
                return False
            self._q.put_nowait(job)
            self.stats.enqueued += 1
            return True
        except queue.Full:
            self.stats.dropped += 1
            return False
        except Exception:  # noqa: BLE001 - the shadow must never break production
            self.stats.dropped += 1
            return False

    def depth(self) -> int:
        return self._q.qsize()

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            return
        for i in range(self.workers):
            t = threading.Thread(target=self._run, name=f"retrainer-shadow-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the workers; jobs still queued are dropped (and counted): shadow is best-effort."""
        if not self._threads:
            return
        # Drain first so the stop markers fit in the bounded queue.
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                self.stats.dropped += 1
            self._q.task_done()
        deadline = time.monotonic() + timeout
        for _ in self._threads:
            try:
                self._q.put(_STOP, timeout=max(0.01, deadline - time.monotonic()))
            except queue.Full:
                break
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:  # a shadow model stuck in predict: daemon threads, abandoned
            log.warning("shadow workers still busy at shutdown (abandoned): %s", ", ".join(alive))
        self._threads = []

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Until every queued job was processed (tests, benchmarks); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._q.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # -- workers ------------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._q.get()
            jobs = [first]
            # Drain what is already queued: one predict call for many requests costs a fraction
            # of one call each, which keeps the shadow's CPU (and GIL) share small under load.
            while len(jobs) < self.max_batch:
                try:
                    jobs.append(self._q.get_nowait())
                except queue.Empty:
                    break
            try:
                work = [j for j in jobs if j is not _STOP]
                by_model: dict[int, list[ShadowJob]] = {}
                for j in work:
                    by_model.setdefault(id(j.model), []).append(j)
                for group in by_model.values():
                    self._process(group)
            finally:
                for _ in jobs:
                    self._q.task_done()
            if any(j is _STOP for j in jobs):
                return

    def _process(self, jobs: list[ShadowJob]) -> None:
        model = jobs[0].model
        if len(jobs) == 1:
            columns = jobs[0].columns
        else:
            columns = {name: [v for j in jobs for v in j.columns[name]] for name in jobs[0].columns}
        t0 = time.perf_counter()
        try:
            pred, score = model.predict(columns)
        except Exception as exc:  # noqa: BLE001 - a failing shadow is data, not an incident
            with self._lock:
                self.stats.errors += len(jobs)
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            return
        latency = (time.perf_counter() - t0) * 1000.0  # of the (batched) shadow call
        records: list[ShadowRecord] = []
        agree = 0
        at = 0
        for job in jobs:
            for i, rid in enumerate(job.request_ids):
                cp, sp = float(job.champion_prediction[i]), float(pred[at])
                agree += cp == sp
                records.append(
                    ShadowRecord(
                        model_name=self.model_name,
                        request_id=rid,
                        champion_version=job.champion_version,
                        shadow_version=model.version,
                        champion_prediction=cp,
                        shadow_prediction=sp,
                        ts=job.ts,
                        champion_score=None if job.champion_score is None else float(job.champion_score[i]),
                        shadow_score=None if score is None else float(score[at]),
                        latency_ms=latency,
                    )
                )
                at += 1
        with self._lock:
            s = self.stats
            s.completed += len(jobs)
            s.rows += len(records)
            s.agreements += agree
            for job in jobs:
                s.shadow_latency_ms.append(latency)
                s.champion_latency_ms.append(job.champion_latency_ms)
        try:
            self.sink(records)
        except Exception as exc:  # noqa: BLE001
            with self._lock:
                self.stats.errors += 1
                self.stats.last_error = f"sink: {type(exc).__name__}: {exc}"

    # -- reporting ----------------------------------------------------------------------------

    def live(self) -> dict[str, Any]:
        """Counters and recent latency percentiles of this process (both models)."""
        with self._lock:
            s = self.stats
            shadow_lat = np.fromiter(s.shadow_latency_ms, dtype=np.float64)
            champ_lat = np.fromiter(s.champion_latency_ms, dtype=np.float64)
            out = {
                "offered": s.offered, "sampled_out": s.sampled_out, "enqueued": s.enqueued,
                "dropped": s.dropped, "completed": s.completed, "errors": s.errors, "rows": s.rows,
                "agreement_rate": s.agreements / s.rows if s.rows else None,
                "last_error": s.last_error, "queue_depth": self.depth(),
            }
        attempted = out["completed"] + out["errors"]
        out["error_rate"] = out["errors"] / attempted if attempted else None
        out["latency_ms"] = {"shadow": _pcts(shadow_lat), "champion": _pcts(champ_lat)}
        return out


def _pcts(values: np.ndarray) -> dict[str, float | None]:
    if values.size == 0:
        return {"p50": None, "p99": None}
    p50, p99 = np.percentile(values, [50, 99])
    return {"p50": float(p50), "p99": float(p99)}


def summarize(rows: Sequence[ShadowRecord]) -> dict[str, Any]:
    """Agreement, score deltas and shadow latency of stored comparisons, per shadow version."""
    by_version: dict[str, list[ShadowRecord]] = {}
    for r in rows:
        by_version.setdefault(r.shadow_version, []).append(r)
    out: dict[str, Any] = {}
    for version, rs in sorted(by_version.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else kv[0]):
        cp = np.array([r.champion_prediction for r in rs])
        sp = np.array([r.shadow_prediction for r in rs])
        cs = np.array([np.nan if r.champion_score is None else r.champion_score for r in rs], dtype=np.float64)
        ss = np.array([np.nan if r.shadow_score is None else r.shadow_score for r in rs], dtype=np.float64)
        lat = np.array([r.latency_ms for r in rs if r.latency_ms is not None], dtype=np.float64)
        delta = (ss - cs)[~(np.isnan(ss) | np.isnan(cs))]
        out[version] = {
            "n": len(rs),
            "champion_versions": sorted({r.champion_version for r in rs}),
            "agreement_rate": float(np.mean(cp == sp)),
            "score_delta": None if delta.size == 0 else {
                "mean": float(delta.mean()),
                "mean_abs": float(np.abs(delta).mean()),
                "p50_abs": float(np.percentile(np.abs(delta), 50)),
                "p99_abs": float(np.percentile(np.abs(delta), 99)),
                "max_abs": float(np.abs(delta).max()),
            },
            "shadow_latency_ms": _pcts(lat),
            "first": min(r.ts for r in rs),
            "last": max(r.ts for r in rs),
        }
    return out


def now() -> datetime:
    return datetime.now(UTC)


__all__ = ["ShadowJob", "ShadowRunner", "ShadowStats", "summarize"]


# -- the shadow switch, kept in the promotion ledger ---------------------------------------------
#
# ``shadow_start`` (to_version = the shadow version) turns shadowing on, ``shadow_stop`` off;
# the latest of the two wins. The sampling share rides in the reason as ``[sample=0.25]``
# until the store has a column for it; without it, ``rollout.shadow.sample`` applies.

SHADOW_ACTIONS = ("shadow_start", "shadow_stop")


def shadow_reason(note: str, sample: float | None) -> str:
    return note if sample is None else f"{note} [sample={sample:g}]"


def _sample_from(reason: str) -> float | None:
    import re

    m = re.search(r"\[sample=([0-9]*\.?[0-9]+(?:e-?\d+)?)\]", reason or "")
    if not m:
        return None
    value = float(m.group(1))
    return value if 0.0 < value <= 1.0 else None


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
    sample = _sample_from(last.reason)
    return version, default_sample if sample is None else sample


__all__ += ["SHADOW_ACTIONS", "shadow_reason", "shadow_target"]
