"""ShadowRunner and InferenceLogWriter in isolation: never block the caller, never lose log rows."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from serving_env import Threshold

from retrainer.config import FeatureSpec
from retrainer.deployments.rollout.stages import shadow_target
from retrainer.deployments.serving.shadow_queue import ShadowJob, ShadowRunner
from retrainer.deployments.rollout.shadow_report import summarize
from retrainer.deployments.serving.shadow_worker import ShadowModelSource
from retrainer.deployments.serving.writer import Assignment, InferenceLogWriter
from retrainer.errors import ValidationError
from retrainer.store.records import PredictionRecord, ShadowRecord, WriteResult

NOW = datetime(2025, 6, 1, tzinfo=UTC)


def job(model, i: int = 0) -> ShadowJob:
    return ShadowJob(model, {"x1": [0.5]}, [f"r{i}"], "1", [1.0], [0.6], 0.3, NOW)


def test_slow_shadow_never_blocks_and_drops_are_counted() -> None:
    sink: list[ShadowRecord] = []
    runner = ShadowRunner("m", sink=sink.extend, queue_size=2, workers=1)
    runner.start()
    slow = Threshold("2", delay=0.5)
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
        assert runner.offer(job(Threshold("2", fail=True), i))
    assert runner.wait_idle(5)
    assert runner.stats.errors == 20
    # Every failed request is stored as an error row: no prediction, the error, the champion's latency.
    assert len(sink) == 20 and all(r.shadow_prediction is None and "exploded" in r.error for r in sink)
    assert {r.champion_latency_ms for r in sink} == {0.3}
    live = runner.live()
    assert live["error_rate"] == 1.0 and "exploded" in live["last_error"]
    t0 = time.perf_counter()
    runner.close()
    assert time.perf_counter() - t0 < 1.0  # every worker gets told to stop


def test_shadow_records_and_summary() -> None:
    sink: list[ShadowRecord] = []
    runner = ShadowRunner("m", sink=sink.extend, queue_size=100, workers=1)
    runner.start()
    for i in range(10):
        runner.offer(ShadowJob(Threshold("3"), {"x1": [i - 4.5]}, [f"r{i}"], "1", [1.0], [0.5], 0.2, NOW))
    assert runner.wait_idle(5)
    runner.close()
    assert len(sink) == 10 and {r.shadow_version for r in sink} == {"3"}
    report = summarize(sink)["3"]
    assert report["n"] == 10 and report["agreement_rate"] == 0.5  # x1 > 0 for half of them
    assert report["score_delta"]["max_abs"] > 0 and report["shadow_latency_ms"]["p50"] is not None
    assert report["champion_latency_ms"] == {"p50": 0.2, "p99": 0.2}
    assert report["errors"] == 0 and report["error_rate"] == 0.0


def test_summary_of_stored_errors_and_latencies() -> None:
    rows = [ShadowRecord("m", f"r{i}", "1", "2", 1.0, 1.0 if i % 2 else 0.0, NOW, champion_score=0.6,
                         shadow_score=0.5, latency_ms=float(i), champion_latency_ms=10.0 + i) for i in range(8)]
    rows += [ShadowRecord("m", f"e{i}", "1", "2", 1.0, None, NOW, latency_ms=50.0, champion_latency_ms=20.0,
                          error="RuntimeError: boom") for i in range(2)]
    report = summarize(rows)["2"]
    assert report["n"] == 10 and report["compared"] == 8 and report["errors"] == 2
    assert report["error_rate"] == 0.2 and report["last_error"] == "RuntimeError: boom"
    assert report["agreement_rate"] == 0.5  # errors are not disagreements
    assert abs(report["score_delta"]["mean"] + 0.1) < 1e-12
    assert report["shadow_latency_ms"]["p50"] == 3.5  # answered requests only
    assert report["champion_latency_ms"]["p50"] == 14.5  # every request, errors too


def test_sampling() -> None:
    import random

    runner = ShadowRunner("m", sink=lambda rows: None, queue_size=10_000, workers=1, rng=random.Random(0))
    taken = sum(runner.offer(job(Threshold("2"), i), sample=0.25) for i in range(4000))
    assert 900 < taken < 1100 and runner.stats.sampled_out == 4000 - taken


# -- the shadow in its own process (spawned; loads its model through a named loader function) --------


def process_runner(sink, *, queue_size=100, **model_kw) -> ShadowRunner:
    source = ShadowModelSource("sqlite:///unused.db", None, "m", (), loader="serving_env:threshold_model",
                               loader_kwargs=model_kw)
    return ShadowRunner("m", sink=sink.extend, queue_size=queue_size, isolation="process", source=source, nice=0)


def test_process_shadow_answers_never_blocks_and_counts_errors_and_deaths() -> None:
    # Three shadow processes spawned side by side: a slow one, one that raises, one that dies.
    sink: list[ShadowRecord] = []
    failing: list[ShadowRecord] = []
    dying: list[ShadowRecord] = []
    runner = process_runner(sink, queue_size=5, delay=0.3)
    fail, die = process_runner(failing, fail=True), process_runner(dying, die=True)
    for i in range(5):  # queued before the workers start: one batch each
        assert fail.offer(job(Threshold("2"), i)) and die.offer(job(Threshold("2"), i))
    for r in (runner, fail, die):
        r.start()
    runner.warm("3")
    try:
        assert runner.offer(ShadowJob(Threshold("3"), {"x1": [2.0, -1.0]}, ["a", "b"], "1", [1.0, 1.0], [0.9, 0.8], 0.4, NOW))
        assert runner.wait_idle(60)
        assert [(r.request_id, r.shadow_prediction, r.error) for r in sink] == [("a", 1.0, None), ("b", 0.0, None)]
        assert sink[0].latency_ms >= 300 and sink[0].champion_latency_ms == 0.4 and sink[0].shadow_version == "3"
        # 50 offers against a 0.3 s shadow: nothing waits, the overflow is dropped and counted.
        t0 = time.perf_counter()
        accepted = [runner.offer(job(Threshold("3"), i)) for i in range(50)]
        assert time.perf_counter() - t0 < 0.05
        assert runner.stats.dropped == 50 - sum(accepted) >= 40
        assert all(r.wait_idle(60) for r in (runner, fail, die))
        live = runner.live()
        assert live["isolation"] == "process" and live["errors"] == 0 and live["process_starts"] == 1

        assert fail.stats.errors == 5 and len(failing) == 5
        assert all(r.shadow_prediction is None and "exploded" in r.error for r in failing)
        assert die.stats.errors == 5 and die.stats.process_deaths >= 1
        assert all(r.shadow_prediction is None and "died" in r.error for r in dying)
    finally:
        for r in (runner, fail, die):
            r.close()
    assert runner._threads == []


@dataclass
class Entry:
    action: str
    to_version: str | None
    reason: str = ""
    details: dict | None = None


def test_shadow_switch_in_the_ledger() -> None:
    kw = {"rollout_mode": "direct", "challenger": "5", "default_sample": 1.0}
    assert shadow_target([], **kw) == (None, 1.0)
    assert shadow_target([], **{**kw, "rollout_mode": "shadow"}) == ("5", 1.0)
    on = Entry("shadow_start", "4", "cli", {"sample": 0.25})
    assert shadow_target([on], **kw) == ("4", 0.25)
    assert shadow_target([Entry("shadow_start", "4", "before 0004 [sample=0.5]")], **kw) == ("4", 0.5)
    assert shadow_target([Entry("shadow_start", "4", "[sample=0.5]", {"sample": 0.1})], **kw) == ("4", 0.1)
    assert shadow_target([Entry("shadow_start", "4", "", {"sample": 7})], **kw) == ("4", 1.0)  # invalid: default
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
