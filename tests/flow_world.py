"""The flow/CLI tests' world: a demo stream, a workdir with warehouse, store and empty MLflow.
Shared by tests/flows and tests/cli (fixtures `stream` and `make_world` in tests/conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from retrainer.config import RetrainerConfig, load_config
from retrainer.demo.data import StreamSpec
from retrainer.demo.world import demo_config, write_config
from retrainer.registry import Registry
from retrainer.store import Store

SPEC = StreamSpec(days=24, rows_per_day=120, drift_day=None, seed=5)
NOW = datetime(2026, 1, 25, tzinfo=SPEC.start.tzinfo)



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
