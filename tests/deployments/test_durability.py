"""kill -9 of a real `retrainer serve` under concurrent clients: no acknowledged prediction is lost.

A server process (the CLI, as an operator runs it) serves while 8 client threads send single rows
and 50-row batches with unique request ids; every request id answered 200 is recorded. Once
enough were acknowledged the server's process group gets SIGKILL mid-stream. A new server is
started on the same config (with ``serving.commit: spool`` it stores what the dead one left in
the spool) and stopped with SIGTERM, then the store is opened directly: with
``serving.durability: committed`` (spool, and ``commit: store``, the group commit) every
acknowledged id must be in it, on SQLite and PostgreSQL. ``buffered`` runs the same crash and only reports what it lost (it is
documented as "may lose the last queue on a crash").

The counts are printed (``pytest -s``) as one line per run for the release notes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from serving_env import FEATURES, Env, free_socket, running

from retrainer.config import FeatureSpec
from retrainer.deployments.serving.app import create_app
from retrainer.deployments.serving.serving import PredictionService
from retrainer.deployments.serving.writer import Commit, InferenceLogWriter, LogWriteFailed
from retrainer.errors import ValidationError
from retrainer.store import Store
from retrainer.store.records import PredictionRecord, WriteResult
from retrainer.store.schema import predictions

BATCH = 50
CLIENTS = 8
ACKS_BEFORE_KILL = 400  # acknowledged requests before the kill: the crash lands mid-stream


def instance(i: int) -> dict[str, Any]:
    return {"x1": (i % 97) / 10 - 4.8, "x2": (i % 13) / 3 - 2.0, "colour": ["red", "green", None][i % 3]}


@dataclass
class Traffic:
    acked_requests: int = 0
    acked_ids: set[str] = field(default_factory=set)
    refused: dict[int, int] = field(default_factory=dict)  # non-200 answers by status
    lock: threading.Lock = field(default_factory=threading.Lock)


def client(url: str, worker: int, stop: threading.Event, traffic: Traffic) -> None:
    """Send until stopped or the server is gone; every 4th request is a 50-row batch."""
    with httpx.Client(base_url=url, timeout=30) as http:
        k = 0
        while not stop.is_set():
            k += 1
            rid = f"w{worker}-{k}"
            batch = k % 4 == 0
            body = ({"instances": [instance(k + j) for j in range(BATCH)], "request_id": rid} if batch
                    else {"features": instance(k), "request_id": rid})
            try:
                r = http.post("/predict", json=body)
            except httpx.HTTPError:
                return  # killed: whatever was in flight was never acknowledged
            with traffic.lock:
                if r.status_code != 200:
                    traffic.refused[r.status_code] = traffic.refused.get(r.status_code, 0) + 1
                    continue
                data = r.json()
                traffic.acked_requests += 1
                traffic.acked_ids.update(data["request_ids"] if batch else [data["request_id"]])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"retrainer serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url + "/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"retrainer serve not ready in {timeout:.0f}s:\n{log.read_text()[-3000:]}")


def start_server(root: Path, cfg: Path, env: Env, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with free_socket() as sock:
        port = sock.getsockname()[1]
    env_vars = {**os.environ, "MLFLOW_TRACKING_URI": env.tracking_uri, "PYTHONWARNINGS": "ignore"}
    exe = Path(sys.executable).parent / "retrainer"
    with log.open("ab") as out:
        proc = subprocess.Popen([str(exe), "serve", "--config", str(cfg), "--port", str(port)], cwd=root,
                                env=env_vars, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def stored_request_ids(store_url: str) -> set[str]:
    store = Store.open(store_url)
    try:
        with store.engine.connect() as conn:
            return set(conn.execute(sa.select(predictions.c.request_id)).scalars())
    finally:
        store.close()


def restart_and_stop(root: Path, cfg: Path, env: Env, log: Path) -> dict[str, Any] | None:
    """Start a server on the crashed one's config (it stores what the spool holds), then SIGTERM it
    (it drains): returns its spool status."""
    proc, url = start_server(root, cfg, env, log)
    try:
        wait_ready(url, proc, log)
        spool = httpx.get(url + "/admin/status", timeout=30).json()["spool"]
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down cleanly (and the writer drained).
        assert proc.wait(120) in (0, -signal.SIGTERM), log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    return spool


def crash_under_load(env: Env, root: Path, store_url: str, durability: str) -> dict[str, Any]:
    """Serve, load, SIGKILL, restart and stop, then count acknowledged vs stored request ids.
    ``durability``: buffered, committed (spool) or committed-store (group commit)."""
    store = Store.open(store_url)
    store.init()
    store.close()
    cfg = root / "retrainer.yaml"
    cfg.write_text(json.dumps({
        "model": {"name": env.registry.model_name},
        "store": {"url": store_url},
        "mlflow": {"tracking_uri": env.tracking_uri, "artifact_location": str(env.root / "artifacts")},
        "data": {"source": {"url": "sqlite:///unused.db", "table": "t"}, "features": FEATURES},
        "serving": {"durability": durability.split("-")[0],
                    "commit": "store" if durability == "committed-store" else "spool"},
    }))
    log = root / "serve.log"
    proc, url = start_server(root, cfg, env, log)
    stop = threading.Event()
    traffic = Traffic()
    threads = [threading.Thread(target=client, args=(url, w, stop, traffic), daemon=True) for w in range(CLIENTS)]
    try:
        wait_ready(url, proc, log)
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while traffic.acked_requests < ACKS_BEFORE_KILL and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)  # the whole process group, mid-stream
        proc.wait(30)
    finally:
        stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        for t in threads:
            t.join(60)
    assert proc.returncode == -signal.SIGKILL
    assert traffic.acked_requests >= ACKS_BEFORE_KILL, f"only {traffic.acked_requests} requests answered 200"
    at_kill = stored_request_ids(store_url)  # after a crash: SQLite recovers its WAL on open
    spool = restart_and_stop(root, cfg, env, log)
    stored = stored_request_ids(store_url)
    lost = sorted(traffic.acked_ids - stored)
    counts = {"durability": durability, "backend": store_url.split(":")[0].split("+")[0],
              "acknowledged_requests": traffic.acked_requests, "acknowledged_rows": len(traffic.acked_ids),
              "acknowledged_rows_in_store_at_kill": len(traffic.acked_ids & at_kill), "stored_rows": len(stored), "lost_rows": len(lost),
              "lost_requests": len({rid.rsplit("-", 1)[0] if rid.count("-") == 2 else rid for rid in lost}),
              "refused": traffic.refused,
              "replayed_groups": None if spool is None else spool["replayed_groups"]}
    print(f"\nkill -9 under {CLIENTS} clients: {json.dumps(counts)}")
    return {**counts, "lost": lost, "spool": spool}


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["committed", "committed-store", "buffered"])
def test_kill9_sqlite(env: Env, tmp_path: Path, durability: str) -> None:
    result = crash_under_load(env, tmp_path, f"sqlite:///{tmp_path / 'store.db'}", durability)
    if durability == "committed":
        assert result["spool"]["replayed_segments"] >= 1  # the dead server's segment was found and stored
        assert not list((tmp_path / "store.db-spool").iterdir())  # and deleted, as was the new server's
    if durability.startswith("committed"):
        assert result["lost"] == [], f"{len(result['lost'])} acknowledged predictions lost: {result['lost'][:10]}"
        assert result["refused"] == {}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("durability", ["committed", "committed-store", "buffered"])
def test_kill9_postgres(env: Env, tmp_path: Path, postgresql_url: str, durability: str) -> None:
    result = crash_under_load(env, tmp_path, postgresql_url, durability)
    if durability == "committed":
        assert result["spool"]["replayed_segments"] >= 1
        assert not list((tmp_path / "retrainer-spool").iterdir())
    if durability.startswith("committed"):
        assert result["lost"] == [], f"{len(result['lost'])} acknowledged predictions lost: {result['lost'][:10]}"
        assert result["refused"] == {}


# -- group commit, in process ---------------------------------------------------------------------


class CountingStore:
    """Records each write (one call = one transaction); fails while ``down``; rejects ids 'bad*'."""

    max_batch = 1000

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.down = False

    def log_predictions(self, model: str, records: list[PredictionRecord], features: Any) -> WriteResult:
        if self.down:
            raise OSError("disk I/O error")
        bad = [r.request_id for r in records if r.request_id.startswith("bad")]
        if bad:
            raise ValidationError("rejected", bad)
        self.calls.append([r.request_id for r in records])
        return WriteResult(len(records), 0)


def rec(rid: str) -> PredictionRecord:
    return PredictionRecord(rid, {"x1": 1.0}, 1.0, datetime(2025, 6, 1, tzinfo=UTC), "1")


def test_group_commit_writes_waiting_requests_in_one_transaction_then_wakes_them() -> None:
    store = CountingStore()
    writer = InferenceLogWriter(store, "m", [FeatureSpec(name="x1")], linger=0.002)
    commits = [Commit([rec(f"r{i}")]) for i in range(20)] + [Commit([rec(f"b{j}") for j in range(50)])]
    for c in commits:  # queued before the thread starts: all of them wait together
        assert writer.offer(c)
    assert not any(c.done.done() for c in commits)
    writer.start()
    for c in commits:
        assert c.done.result(timeout=10) == frozenset()  # stored, nothing was a re-sent id
    writer.close()
    assert len(store.calls) == 1 and len(store.calls[0]) == 70
    assert writer.stats.commits == 21 and writer.stats.commit_failures == 0


def test_failed_write_fails_the_waiting_requests_instead_of_acknowledging() -> None:
    store = CountingStore()
    writer = InferenceLogWriter(store, "m", [FeatureSpec(name="x1")], linger=0.002)
    writer.start()
    store.down = True
    down = Commit([rec("r1")])
    writer.offer(down)
    with pytest.raises(LogWriteFailed, match="retry the request with the same request_id"):
        down.done.result(timeout=10)
    store.down = False
    ok, bad = Commit([rec("r2")]), Commit([rec("r3"), rec("bad-4")])
    writer.offer(ok)
    writer.offer(bad)
    assert ok.done.result(timeout=10) == frozenset()  # stored, nothing was a re-sent id
    with pytest.raises(LogWriteFailed, match="bad-4"):
        bad.done.result(timeout=10)
    writer.close()
    assert sorted(i for call in store.calls for i in call) == ["r2", "r3"]
    assert writer.stats.commit_failures == 2 and writer.stats.commits == 1 and writer.stats.write_errors == 1


def test_group_commit_answers_503_not_200_when_the_rows_cannot_be_stored(env: Env, store: Store) -> None:
    cfg = env.config(str(store.engine.url), serving={"commit": "store"})
    assert cfg.serving.durability == "committed"  # the default
    svc = PredictionService.from_config(cfg, store=store, registry=env.registry, reload_interval=60)
    with running(create_app(svc)) as url:
        ok = httpx.post(url + "/predict", json={"features": instance(1), "request_id": "stored-1"})
        assert ok.status_code == 200
        # Stored before the answer: visible to another connection right away, no flush needed.
        with store.engine.connect() as conn:
            assert set(conn.execute(sa.select(predictions.c.request_id)).scalars()) == {"stored-1"}
        real = store.log_predictions
        store.log_predictions = lambda *a, **k: (_ for _ in ()).throw(OSError("disk I/O error"))  # type: ignore[method-assign]
        try:
            failed = httpx.post(url + "/predict", json={"instances": [instance(2), instance(3)], "request_id": "lost"})
        finally:
            store.log_predictions = real  # type: ignore[method-assign]
        assert failed.status_code == 503 and "not stored" in failed.json()["detail"]
        again = httpx.post(url + "/predict", json={"instances": [instance(2), instance(3)], "request_id": "lost"})
        assert again.status_code == 200
    with store.engine.connect() as conn:
        assert set(conn.execute(sa.select(predictions.c.request_id)).scalars()) == {"stored-1", "lost-0", "lost-1"}


def test_a_group_made_on_an_event_loop_is_woken_with_one_call_and_each_request_gets_its_outcome() -> None:
    import asyncio

    from retrainer.deployments.serving.writer import committed

    async def scenario() -> tuple[list[Any], int]:
        loop = asyncio.get_running_loop()
        wakes = 0
        real = loop.call_soon_threadsafe

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal wakes
            wakes += 1
            return real(*args, **kwargs)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        store = CountingStore()
        writer = InferenceLogWriter(store, "m", [FeatureSpec(name="x1")], linger=0.002)
        commits = [Commit([rec(f"r{i}")]) for i in range(5)] + [Commit([rec("r6"), rec("bad-7")])]
        assert all(c.waiter is not None and c.waiter.get_loop() is loop for c in commits)
        for c in commits:  # queued before the thread starts: one group
            assert writer.offer(c)
        writer.start()
        outcomes = await asyncio.gather(*(committed(c) for c in commits), return_exceptions=True)
        writer.close()
        return outcomes, wakes

    outcomes, wakes = asyncio.run(scenario())
    assert outcomes[:5] == [frozenset()] * 5
    assert isinstance(outcomes[5], LogWriteFailed) and "bad-7" in str(outcomes[5])
    assert wakes == 1  # one wake-up for the six requests, not one each


def test_a_commit_made_off_any_loop_is_still_awaitable() -> None:
    import asyncio

    from retrainer.deployments.serving.writer import committed

    store = CountingStore()
    writer = InferenceLogWriter(store, "m", [FeatureSpec(name="x1")], linger=0.002)
    c = Commit([rec("r1")])  # a worker thread's commit: no loop, no waiter
    assert c.waiter is None
    writer.start()
    writer.offer(c)
    assert asyncio.run(committed(c)) == frozenset()
    writer.close()
