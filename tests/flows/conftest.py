"""Flow tests run on a session-scoped Prefect test harness, MLflow on a temporary SQLite, and a
real SQLite store: the same stack `retrainer retrain` uses, with nothing to start by hand."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _on_the_harness(prefect_harness: None) -> None:
    """Every flow test runs on the session's Prefect test harness."""


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
