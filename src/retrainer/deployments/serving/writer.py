"""The inference-log writer: predictions, A/B assignments and shadow comparisons reach the
store in batches, on a background thread, off the request path.

Rows are never dropped to keep up. The queue is bounded; when it is full the request path
waits for room (:meth:`InferenceLogWriter.put`, run off the event loop) and that wait is
counted as backpressure. A failed write is retried with backoff until it succeeds, so a
store outage slows the service down instead of losing its log. ``close()`` drains the queue.

A batch the store rejects as invalid (which the service's own validation should make
impossible) is split in halves until the bad rows are isolated; those are logged and counted,
the rest are written.

Spooled rows (``serving.durability: committed`` with ``serving.commit: spool``) are
already durable in the prediction spool (:mod:`retrainer.deployments.serving.spool`) when they arrive:
they are written like buffered rows, and once stored the spool is told (``Spooled.on_stored``,
with the rows the store refused, which the spool sets aside rather than lose) so it can delete
the segment.

Group commit (``serving.commit: store``, the default): a request hands its rows over as a
:class:`Commit` and waits on its future. The thread takes everything queued, i.e. all that
arrived while the previous transaction ran, writes the predictions and A/B assignments of all
waiting requests in one transaction, then resolves every future: the request answers only once
its rows are stored. It lingers (at most ``linger``, 2 ms in that mode) for more requests only
when the server is busy (the previous write ended less than ``linger`` ago): a request to an
idle server is written at once.
A failed write is not retried for them: their futures fail and the requests answer 503, never
200 for a row that is not stored. Plain lists (``buffered`` mode, shadow rows) and spooled rows
keep the retry-until-written path.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from concurrent.futures import Future, InvalidStateError
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from retrainer.config import FeatureSpec
from retrainer.errors import RetrainerError, ValidationError
from retrainer.store.records import PredictionRecord, ShadowRecord

if TYPE_CHECKING:
    from retrainer.store import Store

log = logging.getLogger(__name__)

_STOP = object()

COMMIT_LINGER = 0.002  # group commit: the longest a request waits for others to share its transaction
# buffered: rows wait in memory for the next batch, and a crash loses them: keep the wait short.
BUFFERED_LINGER = 0.05
# spool: the rows are already durable on disk, so the store write can gather longer and cost
# less per row (measured: writer thread CPU per request 0.28 -> 0.18 ms at 0.05 -> 0.25 s);
# triggers see a prediction at most this much later.
SPOOL_LINGER = 0.25


class LogWriteFailed(RetrainerError):
    """The rows of a committed request could not be stored; the request must not be acknowledged."""


def running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


@dataclass(slots=True)
class Commit:
    """One request's log rows and the future its response waits on (group commit).

    Made on an event loop (a request handler), it also carries ``waiter``, an asyncio future on
    that loop: the writer wakes all the waiters of a group with one ``call_soon_threadsafe``
    instead of one cross-thread wake-up per request (``asyncio.wrap_future``). Await
    :func:`committed`."""

    rows: list[Any]
    # Resolved with the request ids of these rows that were already stored (a re-sent request).
    done: Future[frozenset[str]] = field(default_factory=Future)
    waiter: asyncio.Future[None] | None = field(
        default_factory=lambda: None if (loop := running_loop()) is None else loop.create_future())

    def __len__(self) -> int:
        return len(self.rows)


async def committed(commit: Commit) -> frozenset[str]:
    """The commit's outcome, awaited without blocking the loop: the request ids that were already
    stored, or LogWriteFailed."""
    if commit.waiter is None:
        return await asyncio.wrap_future(commit.done)
    await commit.waiter
    return commit.done.result()


def settle_waiters(waiters: list[asyncio.Future[None]], failure: BaseException | None = None) -> None:
    """Wake requests waiting on the loop (this must run on it): all succeed, or all fail with ``failure``."""
    for w in waiters:
        if not w.done():  # a request that went away was cancelled
            if failure is None:
                w.set_result(None)
            else:
                w.set_exception(failure)


def _wake_group(commits: list[Commit]) -> None:
    """After their futures are resolved: one wake-up per event loop for the whole group."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for c in commits:
        if c.waiter is not None:
            by_loop.setdefault(c.waiter.get_loop(), []).append(c.waiter)
    for loop, waiters in by_loop.items():
        try:
            loop.call_soon_threadsafe(settle_waiters, waiters)
        except RuntimeError:  # that loop is closed: nobody is waiting there any more
            pass


class Spooled(list[Any]):
    """Log rows already durable in the prediction spool (``serving.commit: spool``): written like
    buffered rows, then ``on_stored(rejected)`` tells the spool they are in the store, except
    the ``rejected`` prediction rows the store refused."""

    def __init__(self, rows: list[Any], on_stored: Callable[[Sequence[Any]], None]) -> None:
        super().__init__(rows)
        self.on_stored = on_stored


@dataclass(frozen=True, slots=True)
class Assignment:
    ab_test_id: int
    unit_id: str
    arm: str


@dataclass
class WriterStats:
    enqueued_items: int = 0
    predictions_written: int = 0
    duplicates: int = 0
    rejected: int = 0
    assignments_written: int = 0
    shadow_written: int = 0
    backpressure_waits: int = 0
    backpressure_seconds: float = 0.0
    write_errors: int = 0
    batches: int = 0
    commits: int = 0  # requests acknowledged after their rows were stored
    commit_groups: int = 0  # group-commit transactions: commits / commit_groups = requests per transaction
    commit_failures: int = 0  # requests answered 503 because their rows could not be stored
    lost_at_shutdown: int = 0
    last_error: str | None = field(default=None)


class InferenceLogWriter:
    """Batched background writer of the service's log rows.

    Items are lists of :class:`PredictionRecord`, :class:`Assignment` or :class:`ShadowRecord`
    (one list per request keeps the queue short), or a :class:`Commit` wrapping such a list;
    ``max_queue`` bounds the number of items.
    """

    def __init__(
        self,
        store: Store,
        model_name: str,
        features: Sequence[FeatureSpec],
        *,
        max_queue: int = 10_000,
        batch_rows: int = 2_000,
        linger: float = 0.05,
        retry_max: float = 5.0,
    ) -> None:
        self.store = store
        self.model_name = model_name
        self.features = list(features)
        self.batch_rows = batch_rows
        self.linger = linger
        self.retry_max = retry_max
        self.stats = WriterStats()
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._last_write_end = 0.0  # monotonic time the previous write finished

    # -- producer side ----------------------------------------------------------------------

    def offer(self, item: list[Any] | Commit) -> bool:
        """Enqueue without waiting; False when the queue is full (then call :meth:`put`)."""
        try:
            self._q.put_nowait(item)
        except queue.Full:
            return False
        self.stats.enqueued_items += 1
        return True

    def put(self, item: list[Any] | Commit) -> None:
        """Enqueue, waiting for room: the backpressure path (call it off the event loop)."""
        t0 = time.perf_counter()
        self._q.put(item)
        waited = time.perf_counter() - t0
        with self._lock:
            self.stats.enqueued_items += 1
            self.stats.backpressure_waits += 1
            self.stats.backpressure_seconds += waited

    def submit(self, item: list[Any]) -> None:
        """Enqueue, waiting only if the queue is full (for worker threads, never the event loop)."""
        if not self.offer(item):
            self.put(item)

    def depth(self) -> int:
        return self._q.qsize()

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything enqueued so far is written; False on timeout."""
        deadline = time.monotonic() + timeout
        while self._q.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="retrainer-log-writer", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 60.0) -> None:
        """Write everything still queued, then stop the thread."""
        if self._thread is None:
            return
        self._closing.set()
        self._q.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            left = self._q.qsize()
            self.stats.lost_at_shutdown += left
            log.error("inference log writer did not drain in %.0fs: %d queued items not written", timeout, left)
        self._thread = None

    # -- consumer side ----------------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        while not stop:
            try:
                first = self._q.get(timeout=0.5)
            except queue.Empty:
                continue
            items = [first]
            rows = len(first) if first is not _STOP else 0
            # Committed requests wait for this transaction: linger only when others are likely to
            # join (something queued, or the previous write ended under `linger` ago: the server
            # is busy); a request to an idle server is written at once. Buffered rows always linger.
            lone = (isinstance(first, Commit) and not self._q.qsize()
                    and time.monotonic() - self._last_write_end > self.linger)
            deadline = time.monotonic() + (0.0 if lone else self.linger)
            # Gather what arrives within `linger` (or is already queued): one transaction per batch.
            while rows < self.batch_rows:
                try:
                    nxt = self._q.get(timeout=max(0.0, deadline - time.monotonic())) if not self._q.qsize() else self._q.get_nowait()
                except queue.Empty:
                    break
                items.append(nxt)
                if nxt is _STOP:
                    break
                rows += len(nxt)
            stop = any(i is _STOP for i in items)
            try:
                rejected = self._write([i for i in items if i is not _STOP])
                self._last_write_end = time.monotonic()
                for item in items:
                    if isinstance(item, Spooled):
                        item.on_stored([r for r in item if isinstance(r, PredictionRecord) and r.request_id in rejected])
            finally:
                for _ in items:
                    self._q.task_done()

    def _write(self, items: list[Any]) -> set[str]:
        """Store ``items``; returns the request ids of plain (buffered or spooled) prediction rows
        the store refused as invalid."""
        commits = [i for i in items if isinstance(i, Commit)]
        preds: list[PredictionRecord] = []
        assigns: dict[int, list[tuple[str, str]]] = {}
        shadows: list[ShadowRecord] = []
        for item in items:
            for row in item.rows if isinstance(item, Commit) else item:
                if isinstance(row, PredictionRecord):
                    if not isinstance(item, Commit):
                        preds.append(row)
                elif isinstance(row, Assignment):
                    # Written even when the request's predictions fail: the arm follows from the
                    # unit's hash, so the assignment is true either way.
                    assigns.setdefault(row.ab_test_id, []).append((row.unit_id, row.arm))
                elif isinstance(row, ShadowRecord):
                    shadows.append(row)
        # Predictions first: an assignment or a shadow row never refers to an unlogged request.
        if commits:
            if self._commit(commits, assigns):
                assigns = {}
        rejected: set[str] = set()
        if preds:
            rejected, _ = self._retry(lambda: self._write_predictions(preds), "predictions")
            self.stats.batches += 1
        for test_id, pairs in assigns.items():
            n = self._retry(lambda t=test_id, p=pairs: self.store.record_assignments(t, p), "assignments")
            self.stats.assignments_written += int(n or 0)
        if shadows:
            n = self._retry(lambda: self.store.record_shadow(shadows), "shadow comparisons")
            self.stats.shadow_written += int(n or 0)
        return rejected

    def _retry(self, fn: Any, what: str) -> Any:
        delay = 0.05
        while True:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - the store is down or locked: wait, never drop
                self.stats.write_errors += 1
                self.stats.last_error = f"{what}: {type(exc).__name__}: {exc}"
                log.warning("writing %s failed (retrying in %.2fs): %s", what, delay, exc)
                time.sleep(delay)
                delay = min(self.retry_max, delay * 2)

    def _commit(self, commits: list[Commit], assigns: dict[int, list[tuple[str, str]]]) -> bool:
        """One attempt to store the predictions of every waiting request (one transaction per
        ``store.max_batch`` rows, the A/B ``assigns`` in the first), then wake each request
        with its outcome. True when ``assigns`` were stored with them (else the caller writes them)."""
        preds = [row for c in commits for row in c.rows if isinstance(row, PredictionRecord)]
        duplicates: set[str] = set()
        self.stats.commit_groups += 1
        try:
            rejected, assigned = self._write_predictions(preds, duplicates, assigns) if preds else (set(), False)
        except Exception as exc:  # noqa: BLE001 - the store is down: these requests answer 503, not 200
            self.stats.write_errors += 1
            self.stats.last_error = f"predictions: {type(exc).__name__}: {exc}"
            log.warning("storing %d predictions of %d requests failed: %s", len(preds), len(commits), exc)
            failure = LogWriteFailed(f"the inference log could not store the prediction ({type(exc).__name__}: {exc}); "
                                     "retry the request with the same request_id")
            for c in commits:
                _resolve(c.done, failure)
            _wake_group(commits)
            self.stats.commit_failures += len(commits)
            return False
        self.stats.batches += 1
        for c in commits:
            ids = [r.request_id for r in c.rows if isinstance(r, PredictionRecord)]
            bad = [rid for rid in ids if rid in rejected]
            if bad:
                self.stats.commit_failures += 1
                _resolve(c.done, LogWriteFailed(f"the store rejected request ids {bad[:5]}: see the server log"))
            else:
                self.stats.commits += 1
                _resolve(c.done, frozenset(rid for rid in ids if rid in duplicates))
        _wake_group(commits)
        return assigned

    def _write_predictions(
        self, rows: list[PredictionRecord], duplicates: set[str] | None = None,
        assigns: dict[int, list[tuple[str, str]]] | None = None,
    ) -> tuple[set[str], bool]:
        """Write ``rows`` (``assigns`` in the first chunk's transaction); returns the request ids
        the store rejected as invalid and whether ``assigns`` were stored (``duplicates``
        collects the ids it already had)."""
        rejected: set[str] = set()
        dups = set() if duplicates is None else duplicates
        assigned = False
        for start in range(0, len(rows), self.store.max_batch):
            with_assigns = assigns if assigns and not assigned else None
            assigned |= self._write_chunk(rows[start : start + self.store.max_batch], rejected, dups, with_assigns)
        return rejected, assigned

    def _write_chunk(
        self, rows: list[PredictionRecord], rejected: set[str], duplicates: set[str],
        assigns: dict[int, list[tuple[str, str]]] | None = None,
    ) -> bool:
        """True when ``assigns`` were stored in the same transaction (a rejected chunk is split
        without them: the caller then writes them on their own)."""
        try:
            if assigns:
                result = self.store.log_predictions(self.model_name, rows, self.features, assignments=assigns)
            else:
                result = self.store.log_predictions(self.model_name, rows, self.features)
        except ValidationError as exc:
            if len(rows) == 1:
                self.stats.rejected += 1
                rejected.add(rows[0].request_id)
                log.error("prediction %s rejected by the store: %s", rows[0].request_id, exc)
                return False
            mid = len(rows) // 2
            self._write_chunk(rows[:mid], rejected, duplicates)
            self._write_chunk(rows[mid:], rejected, duplicates)
            return False
        self.stats.predictions_written += result.inserted
        self.stats.duplicates += result.duplicates
        duplicates.update(result.duplicate_ids)
        self.stats.assignments_written += result.new_assignments
        return bool(assigns)


def _resolve(done: Future[frozenset[str]], outcome: BaseException | frozenset[str]) -> None:
    """Wake the waiting request; one that went away (cancelled future) has nobody to tell."""
    try:
        if isinstance(outcome, BaseException):
            done.set_exception(outcome)
        else:
            done.set_result(outcome)
    except InvalidStateError:
        pass


__all__ = ["BUFFERED_LINGER", "COMMIT_LINGER", "SPOOL_LINGER", "running_loop", "Assignment", "Commit", "committed", "InferenceLogWriter", "LogWriteFailed", "Spooled", "WriterStats",
           "settle_waiters"]
