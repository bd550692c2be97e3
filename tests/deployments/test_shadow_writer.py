"""ShadowRunner and InferenceLogWriter in isolation: never block the caller, never lose log rows."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from retrainer.config import FeatureSpec
from retrainer.deployments.shadow import (
    ShadowJob,
    ShadowRunner,
    shadow_reason,
    shadow_target,
    summarize,
)
from retrainer.deployments.writer import Assignment, InferenceLogWriter
from retrainer.errors import ValidationError
from retrainer.store.records import PredictionRecord, ShadowRecord, WriteResult

NOW = datetime(2025, 6, 1, tzinfo=UTC)


class Model:
    def __init__(self, version: str, *, delay: float = 0.0, fail: bool = False) -> None:
        self.version, self.delay, self.fail = version, delay, fail

    def predict(self, columns):
        if self.fail:
            raise RuntimeError("shadow model exploded")
        if self.delay:
            time.sleep(self.delay)
        x = np.asarray(columns["x1"], dtype=float)
        return (x > 0).astype(float), 1 / (1 + np.exp(-x))


def job(model, i: int = 0) -> ShadowJob:
    return ShadowJob(model, {"x1": [0.5]}, [f"r{i}"], "1", [1.0], [0.6], 0.3, NOW)


def test_slow_shadow_never_blocks_and_drops_are_counted() -> None:
    sink: list[ShadowRecord] = []
    runner = ShadowRunner("m", sink=sink.extend, queue_size=2, workers=1)
    runner.start()
    slow = Model("2", delay=0.5)
    t0 = time.perf_counter()
    accepted = [runner.offer(job(slow, i)) for i in range(50)]
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.05, elapsed  # 50 offers against a 0.5 s model: no waiting
    assert sum(accepted) <= 3 and runner.stats.dropped == 50 - sum(accepted)
    runner.close(timeout=2)
    assert runner.stats.dropped >= 47


def test_failing_shadow_is_counted_not_raised() -> None:
    sink: list[ShadowRecord] = []
    runner = ShadowRunner("m", sink=sink.extend, queue_size=100, workers=2)
    runner.start()
    for i in range(20):
        assert runner.offer(job(Model("2", fail=True), i))
    assert runner.wait_idle(5)
    assert runner.stats.errors == 20 and sink == []
    live = runner.live()
    assert live["error_rate"] == 1.0 and "exploded" in live["last_error"]
    runner.close()


def test_shadow_records_and_summary() -> None:
    sink: list[ShadowRecord] = []
    runner = ShadowRunner("m", sink=sink.extend, queue_size=100, workers=1)
    runner.start()
    for i in range(10):
        runner.offer(ShadowJob(Model("3"), {"x1": [i - 4.5]}, [f"r{i}"], "1", [1.0], [0.5], 0.2, NOW))
    assert runner.wait_idle(5)
    runner.close()
    assert len(sink) == 10 and {r.shadow_version for r in sink} == {"3"}
    report = summarize(sink)["3"]
    assert report["n"] == 10 and report["agreement_rate"] == 0.5  # x1 > 0 for half of them
    assert report["score_delta"]["max_abs"] > 0 and report["shadow_latency_ms"]["p50"] is not None


def test_sampling() -> None:
    import random

    runner = ShadowRunner("m", sink=lambda rows: None, queue_size=10_000, workers=1, rng=random.Random(0))
    taken = sum(runner.offer(job(Model("2"), i), sample=0.25) for i in range(4000))
    assert 900 < taken < 1100 and runner.stats.sampled_out == 4000 - taken


@dataclass
class Entry:
    action: str
    to_version: str | None
    reason: str = ""


def test_shadow_switch_in_the_ledger() -> None:
    kw = {"rollout_mode": "direct", "challenger": "5", "default_sample": 1.0}
    assert shadow_target([], **kw) == (None, 1.0)
    assert shadow_target([], **{**kw, "rollout_mode": "shadow"}) == ("5", 1.0)
    on = Entry("shadow_start", "4", shadow_reason("cli", 0.25))
    assert shadow_target([on], **kw) == ("4", 0.25)
    assert shadow_target([on, Entry("promote", "4")], **kw) == ("4", 0.25)
    assert shadow_target([on, Entry("shadow_stop", "4")], **kw) == (None, 1.0)
    assert shadow_target([Entry("shadow_start", None, "handed over")], **kw) == ("5", 1.0)


class SlowStore:
    """Fails the first writes, then is slow: the writer must retry and keep every row."""

    max_batch = 1000

    def __init__(self, fail_first: int = 2, delay: float = 0.02) -> None:
        self.fail_first, self.delay = fail_first, delay
        self.rows: dict[str, PredictionRecord] = {}
        self.assignments: list[tuple[int, str, str]] = []
        self.calls = 0
        self.lock = threading.Lock()

    def log_predictions(self, model, records, features):
        with self.lock:
            self.calls += 1
            if self.calls <= self.fail_first:
                raise OSError("database is locked")
        time.sleep(self.delay)
        bad = [r.request_id for r in records if r.request_id.startswith("bad")]
        if bad:
            raise ValidationError("rejected", bad)
        new = [r for r in records if r.request_id not in self.rows]
        for r in new:
            self.rows[r.request_id] = r
        return WriteResult(len(new), len(records) - len(new))

    def record_assignments(self, test_id, pairs):
        self.assignments += [(test_id, u, a) for u, a in pairs]
        return len(pairs)

    def record_shadow(self, rows):
        return len(rows)


def rec(rid: str) -> PredictionRecord:
    return PredictionRecord(rid, {"x1": 1.0}, 1.0, NOW, "1")


def test_writer_backpressure_keeps_every_row() -> None:
    store = SlowStore(fail_first=2, delay=0.02)
    writer = InferenceLogWriter(store, "m", [FeatureSpec(name="x1")], max_queue=5, batch_rows=10, linger=0.001)
    writer.start()
    n, blocked = 300, 0
    for i in range(n):
        item = [rec(f"r{i}"), Assignment(1, f"u{i % 7}", "champion")]
        if not writer.offer(item):
            blocked += 1
            writer.put(item)  # what the service does off the event loop
    writer.close()
    assert len(store.rows) == n  # nothing lost despite failures and a full queue
    assert blocked > 0 and writer.stats.backpressure_waits == blocked
    assert writer.stats.write_errors == 2 and writer.stats.predictions_written == n
    assert len(store.assignments) == n


def test_writer_isolates_rejected_rows() -> None:
    store = SlowStore(fail_first=0, delay=0.0)
    writer = InferenceLogWriter(store, "m", [FeatureSpec(name="x1")], linger=0.05)
    writer.start()
    writer.offer([rec(f"ok{i}") for i in range(10)] + [rec("bad-1")] + [rec(f"ok{i}") for i in range(10, 20)])
    assert writer.flush(5)
    writer.close()
    assert len(store.rows) == 20 and writer.stats.rejected == 1
