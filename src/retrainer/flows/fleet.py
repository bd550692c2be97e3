"""The fleet flow: the monitor check for many models at once, by task mapping.

The default task runner is a thread pool (enough for one machine: the checks are mostly numpy and
SQL, which release the GIL). With the ``dask`` extra, pass ``task_runner="dask"`` or use
:func:`fleet_on_dask` to spread the models over a Dask cluster.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from prefect import flow, task, unmapped
from prefect.task_runners import ThreadPoolTaskRunner

from retrainer.config import load_config


def check_config(config_path: str, now: datetime) -> dict[str, Any]:
    """One model's check; a broken model is reported, not allowed to sink the fleet."""
    from retrainer.errors import RetrainerError
    from retrainer.flows.monitor import check_model

    try:
        cfg = load_config(config_path)
        return {"config_path": config_path, "model": cfg.model.name, **check_model(cfg, now=now), "error": None}
    except RetrainerError as exc:
        return {"config_path": config_path, "model": None, "should_retrain": False, "reasons": [], "checks": {},
                "error": f"{type(exc).__name__}: {exc}"}


check_config_task = task(check_config, name="check-model", retries=2, retry_delay_seconds=[2, 10])


def _fleet(config_paths: list[str], now: datetime | None, emit_events: bool) -> list[dict[str, Any]]:
    from retrainer.tasks.notify import request_retrain

    at = now or datetime.now(timezone.utc)
    futures = check_config_task.map(config_paths, now=unmapped(at))
    results = [f.result() for f in futures]
    if emit_events:
        for r in results:
            if r["should_retrain"]:
                r["event_id"] = request_retrain(r["model"], config_path=r["config_path"], reasons=r["reasons"],
                                                checked_at=at.isoformat())
    return results


@flow(name="fleet", task_runner=ThreadPoolTaskRunner(max_workers=4), validate_parameters=True)
def fleet(config_paths: list[str], now: datetime | None = None, emit_events: bool = True) -> list[dict[str, Any]]:
    """Check every model in ``config_paths`` concurrently; emit a retrain request for each that fires."""
    return _fleet(config_paths, now, emit_events)


def fleet_on_dask(config_paths: list[str], now: datetime | None = None, *, address: str | None = None,
                  emit_events: bool = True) -> list[dict[str, Any]]:
    """The same flow on a Dask cluster (``address``), or a local one when no address is given."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # pragma: no cover - depends on the extra
        from retrainer.errors import ConfigError

        raise ConfigError("the Dask task runner needs the extra: pip install 'retrainer[dask]'") from exc
    runner = DaskTaskRunner(address=address) if address else DaskTaskRunner(
        cluster_kwargs={"n_workers": 2, "threads_per_worker": 2, "processes": False}
    )
    return fleet.with_options(task_runner=runner)(config_paths=config_paths, now=now, emit_events=emit_events)
