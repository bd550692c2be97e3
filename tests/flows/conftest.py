"""Flow tests run on a session-scoped Prefect test harness, MLflow on a temporary SQLite, and a
real SQLite store: the same stack `retrainer retrain` uses, with nothing to start by hand."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from retrainer.config import RetrainerConfig, load_config
from retrainer.demo.data import StreamSpec, generate_stream
from retrainer.demo.world import demo_config, write_config, write_warehouse
from retrainer.registry import Registry
from retrainer.store import Store

SPEC = StreamSpec(days=24, rows_per_day=120, drift_day=None, seed=5)
NOW = datetime(2026, 1, 25, tzinfo=SPEC.start.tzinfo)


@pytest.fixture(autouse=True)
def _on_the_harness(prefect_harness: None) -> None:
    """Every flow test runs on the session's Prefect test harness."""


@pytest.fixture(scope="session")
def stream():
    return generate_stream(SPEC)


@dataclass
class World:
    dir: Path
    config_path: Path

    @property
    def cfg(self) -> RetrainerConfig:
        return load_config(self.config_path)

    def store(self) -> Store:
        return Store.open(self.cfg.store.url)

    def registry(self) -> Registry:
        return Registry.from_config(self.cfg)

    def reconfigure(self, **changes: Any) -> None:
        changes["rollout"] = {**changes.get("rollout", {"mode": "direct"})}
        write_config(self.dir, demo_config(model_name=self.cfg.model.name, **changes))


@pytest.fixture
def make_world(tmp_path: Path, mlflow_db_template: Path, stream) -> Callable[..., World]:
    """A fresh workdir: warehouse with labelled rows up to NOW, initialised store, empty MLflow."""

    def make(**config: Any) -> World:
        workdir = tmp_path / f"w-{uuid.uuid4().hex[:6]}"
        workdir.mkdir()
        shutil.copy(mlflow_db_template, workdir / "mlflow.db")
        # The latency check has its own tests; here a loaded CI box must not fail the flow on timing.
        config.setdefault("rollout", {"mode": "direct"})
        config["rollout"] = {**config["rollout"]}
        path = write_config(workdir, demo_config(model_name=f"credit-{uuid.uuid4().hex[:6]}", **config))
        world = World(workdir, path)
        write_warehouse(world.cfg.data.source.url, stream[stream["ts"] < NOW])
        with world.store() as store:
            store.init()
        return world

    return make


@pytest.fixture
def events(monkeypatch) -> list[dict[str, Any]]:
    """Every Prefect event retrainer emits during the test (still sent to the harness as well)."""
    import prefect.events

    seen: list[dict[str, Any]] = []
    real = prefect.events.emit_event

    def recording(event: str, resource: dict[str, str], payload: dict[str, Any] | None = None, **kw: Any):
        seen.append({"event": event, "resource": dict(resource), "payload": dict(payload or {})})
        return real(event=event, resource=resource, payload=payload, **kw)

    monkeypatch.setattr(prefect.events, "emit_event", recording)
    return seen


@dataclass
class Webhook:
    block_name: str
    bodies: list[str]
    received: threading.Event

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            self.received.wait(0.1)
        return len(self.bodies) >= n


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """A real Prefect notification block (custom webhook) posting to an HTTP server on loopback."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    bodies: list[str] = []
    received = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers.get("Content-Length", 0))
            bodies.append(self.rfile.read(length).decode())
            received.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    name = f"retrainer-test-{uuid.uuid4().hex[:8]}"
    CustomWebhookNotificationBlock(
        name="retrainer tests",
        url=f"http://127.0.0.1:{server.server_port}/hook",
        json_data={"text": "{{subject}}: {{body}}"},
    ).save(name)
    try:
        yield Webhook(f"custom-webhook/{name}", bodies, received)
    finally:
        server.shutdown()
        thread.join(5)
