"""kill -9 of a real `retrainer serve` under concurrent clients: no acknowledged prediction is lost.

A server process (the CLI, as an operator runs it) serves while 8 client threads send single rows
and 50-row batches with unique request ids; every request id answered 200 is recorded. Once
enough were acknowledged the server's process group gets SIGKILL mid-stream. Then the store is
opened directly: with ``serving.durability: committed`` every acknowledged id must be in it, on
SQLite and PostgreSQL. ``buffered`` runs the same crash and only reports what it lost (it is
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from serving_env import FEATURES, Env, free_socket

from retrainer.store import Store
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


def crash_under_load(env: Env, root: Path, store_url: str, durability: str) -> dict[str, Any]:
    """Serve, load, SIGKILL, then count acknowledged vs stored request ids."""
    store = Store.open(store_url)
    store.init()
    store.close()
    cfg = root / "retrainer.yaml"
    cfg.write_text(json.dumps({
        "model": {"name": env.registry.model_name},
        "store": {"url": store_url},
        "mlflow": {"tracking_uri": env.tracking_uri, "artifact_location": str(env.root / "artifacts")},
        "data": {"source": {"url": "sqlite:///unused.db", "table": "t"}, "features": FEATURES},
        "serving": {"durability": durability},
    }))
    with free_socket() as sock:
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = root / "serve.log"
    env_vars = {**os.environ, "MLFLOW_TRACKING_URI": env.tracking_uri, "PYTHONWARNINGS": "ignore"}
    exe = Path(sys.executable).parent / "retrainer"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(exe), "serve", "--config", str(cfg), "--port", str(port)], cwd=root,
                                env=env_vars, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
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

    store = Store.open(store_url)  # after a crash: SQLite recovers its WAL on open
    try:
        with store.engine.connect() as conn:
            stored = set(conn.execute(sa.select(predictions.c.request_id)).scalars())
    finally:
        store.close()
    lost = sorted(traffic.acked_ids - stored)
    counts = {"durability": durability, "backend": store_url.split(":")[0].split("+")[0],
              "acknowledged_requests": traffic.acked_requests, "acknowledged_rows": len(traffic.acked_ids),
              "stored_rows": len(stored), "lost_rows": len(lost),
              "lost_requests": len({rid.rsplit("-", 1)[0] if rid.count("-") == 2 else rid for rid in lost}),
              "refused": traffic.refused}
    print(f"\nkill -9 under {CLIENTS} clients: {json.dumps(counts)}")
    return {**counts, "lost": lost}


@pytest.mark.slow
@pytest.mark.parametrize("durability", ["committed", "buffered"])
def test_kill9_sqlite(env: Env, tmp_path: Path, durability: str) -> None:
    result = crash_under_load(env, tmp_path, f"sqlite:///{tmp_path / 'store.db'}", durability)
    if durability == "committed":
        assert result["lost"] == [], f"{len(result['lost'])} acknowledged predictions lost: {result['lost'][:10]}"
        assert result["refused"] == {}


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.parametrize("durability", ["committed", "buffered"])
def test_kill9_postgres(env: Env, tmp_path: Path, postgresql_url: str, durability: str) -> None:
    result = crash_under_load(env, tmp_path, postgresql_url, durability)
    if durability == "committed":
        assert result["lost"] == [], f"{len(result['lost'])} acknowledged predictions lost: {result['lost'][:10]}"
        assert result["refused"] == {}
