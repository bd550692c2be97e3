"""Helpers for the serving tests: tiny sklearn versions in a real MLflow registry, a config for
them, and a real uvicorn server on a loopback port (run in a thread).

Not a conftest: test modules import it by name (``from serving_env import ...``)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from retrainer.config import RetrainerConfig, parse_config
from retrainer.registry import Registry

# The models use x1 and x2 (their signature says so); colour is logged but not a model input.
FEATURES = [
    {"name": "x1"},
    {"name": "x2"},
    {"name": "colour", "type": "categorical", "nullable": True},
]
WINDOW = (datetime(2025, 5, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC))


def make_data(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({
        "x1": rng.normal(size=n),
        "x2": rng.normal(size=n),
        "colour": rng.choice(["red", "green", "blue"], size=n).astype(object),
    })
    y = ((2 * X["x1"] + np.where(X["colour"] == "red", 1.0, -0.5) + rng.normal(scale=0.7, size=n)) > 0).astype(int)
    return X, y.to_numpy()


def make_model(C: float, seed: int, intercept: float = 0.0) -> Any:
    """A small logistic regression on x1, x2 (cheap to predict: tests measure the service)."""
    from sklearn.linear_model import LogisticRegression

    X, y = make_data(seed=seed)
    model = LogisticRegression(C=C).fit(X[["x1", "x2"]], y)
    model.intercept_ = model.intercept_ + intercept  # shifts the decision boundary: versions disagree
    return model


@dataclass
class Env:
    root: Path
    registry: Registry
    versions: list[str]
    tracking_uri: str

    def config(self, store_url: str, **overrides: Any) -> RetrainerConfig:
        data: dict[str, Any] = {
            "model": {"name": self.registry.model_name},
            "store": {"url": store_url},
            "mlflow": {"tracking_uri": self.tracking_uri, "artifact_location": str(self.root / "artifacts")},
            "data": {"source": {"url": "sqlite:///unused.db", "table": "t"}, "features": FEATURES},
        }
        for key, value in overrides.items():
            data[key] = value
        return parse_config(data, base_dir=self.root, environ={})


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on 127.0.0.1:<free port> in a thread; yields the base URL."""
    import uvicorn

    sock = free_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()


def held_prediction_writes(store: Any, monkeypatch: Any) -> threading.Event:
    """Hold every prediction write to ``store`` until the returned event is set: rows stay in the
    log writer's memory queue, as under load (the spool's writer lingers 0.25 s)."""
    release = threading.Event()
    real = store.log_predictions

    def held(*args: Any, **kwargs: Any) -> Any:
        release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "log_predictions", held)
    return release


# -- stand-in shadow models, importable by a spawned shadow process (loader="serving_env:...") ----


class Slow:
    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay, self.version = inner, delay, inner.version

    def predict(self, columns: Any) -> Any:
        time.sleep(self.delay)
        return self.inner.predict(columns)


class Broken:
    def __init__(self, inner: Any) -> None:
        self.version = inner.version

    def predict(self, columns: Any) -> Any:
        raise RuntimeError("shadow model is broken")


class Threshold:
    """No registry at all: predicts x1 > 0, optionally slowly, failing, or killing its process."""

    def __init__(self, version: str, *, delay: float = 0.0, fail: bool = False, die: bool = False) -> None:
        self.version, self.delay, self.fail, self.die = version, delay, fail, die

    def predict(self, columns: Any) -> Any:
        if self.die:
            import os

            os._exit(3)
        if self.fail:
            raise RuntimeError("shadow model exploded")
        if self.delay:
            time.sleep(self.delay)
        x = np.asarray(columns["x1"], dtype=float)
        return (x > 0).astype(float), 1 / (1 + np.exp(-x))


def threshold_model(source: Any, version: str, **kw: Any) -> Threshold:
    return Threshold(version, **kw)


def wrapped_registry_model(source: Any, version: str, *, slow: str = "", broken: str = "", delay: float = 1.0) -> Any:
    """The registry's model of ``version``, made slow or broken when the test says so."""
    from retrainer.deployments.serving.shadow_worker import load_registry_model

    model = load_registry_model(source, version)
    return Slow(model, delay) if version == slow else Broken(model) if version == broken else model
