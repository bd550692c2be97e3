"""`shadow stop` frees the shadow worker process: when the routing loses its shadow the runner
ends the process (and its loaded models) instead of keeping it until the server exits."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime

import psutil

from retrainer.deployments.serving.shadow_queue import ShadowJob, ShadowRunner
from retrainer.deployments.serving.shadow_worker import ShadowModelSource
from retrainer.store.records import ShadowRecord

NOW = datetime(2025, 6, 1, tzinfo=UTC)


class Version:
    def __init__(self, version: str) -> None:
        self.version = version


def _children() -> set[int]:
    """Spawned worker processes (not multiprocessing's resource tracker)."""
    out = set()
    for p in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "spawn_main" in " ".join(p.cmdline()):
                out.add(p.pid)
        except psutil.Error:
            pass
    return out


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.05)
    return False


def test_shadow_stop_ends_the_worker_process_and_a_new_shadow_starts_one() -> None:
    sink: list[ShadowRecord] = []
    source = ShadowModelSource("sqlite:///unused.db", None, "m", (), loader="serving_env:threshold_model")
    runner = ShadowRunner("m", sink=sink.extend, isolation="process", source=source, nice=0)
    before = _children()
    runner.start()
    try:
        runner.warm("3")  # what the router does when a shadow appears
        assert runner.offer(ShadowJob(Version("3"), {"x1": [2.0]}, ["a"], "1", [1.0], [0.9], 0.4, NOW))
        assert runner.wait_idle(60) and [r.shadow_prediction for r in sink] == [1.0]
        [pid] = _children() - before
        assert psutil.Process(pid).is_running()

        runner.warm(None)  # the routing lost its shadow (`retrainer shadow stop`, picked up by reload)
        assert _gone(pid), "the shadow worker process outlived `shadow stop`"
        assert runner.stats.process_deaths == 0  # a stop, not a crash

        runner.warm("4")  # a later shadow gets a fresh process
        assert runner.offer(ShadowJob(Version("4"), {"x1": [-1.0]}, ["b"], "1", [1.0], [0.9], 0.4, NOW))
        assert runner.wait_idle(60) and sink[-1].shadow_prediction == 0.0
        assert runner.stats.process_starts == 2
    finally:
        runner.close()
