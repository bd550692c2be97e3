"""The fleet flow: every model's check, a batch of models per task, one fleet-level control.

A fleet is one fleet.yaml (template + models, or models found in the store; see
:mod:`retrainer.fleet_config`) or, as before, a list of per-model retrainer.yaml files. The flow
splits the models into batches of ``fleet.batch_size`` (hundreds) and maps one task over the
batches: a task per model would cost Prefect tens of milliseconds of orchestration each, more than
the check itself (:func:`retrainer.triggers.fleet.check_batch` reads a batch's counts in a few
queries). The results go through the fleet's false-retrain control
(:func:`~retrainer.triggers.fleet.fleet_control`), one markdown artifact summarises the cycle, and
each model cleared to retrain gets its ``retrainer.retrain.requested`` event.

The default task runner is a thread pool (one machine). :func:`fleet_on_dask` runs the same flow
on prefect-dask's ``DaskTaskRunner``: a local cluster, or an existing scheduler by address; the
distribution is Dask's, there is no code of ours for it. The fleet reads champions from the
store's pointer (the source of truth), not from MLflow per model.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from prefect import flow, task, unmapped
from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from retrainer.config import RetrainerConfig, load_config
from retrainer.errors import ConfigError, RetrainerError, debug_requested
from retrainer.tasks import retry_on_transient

DEFAULT_BATCH = 200


@lru_cache(maxsize=8)
def _fleet(path: str, mtime: float) -> Any:
    from retrainer.fleet_config import load_fleet_config

    return load_fleet_config(path)


def _fleet_config(path: str) -> Any:
    # Cached per file version: a worker checks many batches of the same fleet per cycle.
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        raise ConfigError(f"fleet file {str(path)!r} cannot be read ({exc.strerror}): pass --fleet with the path to "
                          "fleet.yaml") from None
    return _fleet(str(Path(path).resolve()), mtime)


_stores: dict[str, Any] = {}
_stores_lock = threading.Lock()


def _store(url: str) -> Any:
    """One open Store per URL per process (its engine pools connections; batches share it)."""
    from retrainer.store import Store

    with _stores_lock:
        if url not in _stores:
            store = Store.open(url)
            store.check_schema()
            _stores[url] = store
        return _stores[url]


def fleet_models(fleet_path: str) -> list[str]:
    """The fleet's model names: the listed ones, then (with ``discover``) the store's other champions."""
    cfg = _fleet_config(fleet_path)
    names = [m.name for m in cfg.models]
    if cfg.fleet.discover:
        listed = set(names)
        names += sorted(m for m in _store(_template_url(cfg)).champions() if m not in listed)
    return names


def _template_url(cfg: Any) -> str:
    from retrainer.fleet_config import fleet_model_configs

    bare = cfg.model_copy(update={"models": [], "fleet": cfg.fleet.model_copy(update={"discover": True})})
    return fleet_model_configs(bare, ["fleet-template"])[0].store.url


def check_fleet_batch(fleet_path: str, models: list[str], now: datetime) -> list[dict[str, Any]]:
    """One batch of a fleet.yaml's models (the body of one task)."""
    from retrainer.fleet_config import fleet_model_configs, member_ref
    from retrainer.triggers.fleet import check_batch

    cfg = _fleet_config(fleet_path)
    wanted = set(models)
    listed = [m for m in cfg.models if m.name in wanted]
    unlisted = sorted(wanted - {m.name for m in listed})
    if unlisted and not cfg.fleet.discover:
        raise ConfigError(f"models {', '.join(unlisted)} are not in {fleet_path}, which does not discover models")
    configs = fleet_model_configs(cfg.model_copy(update={"models": listed}), unlisted)
    by_url: dict[str, list[RetrainerConfig]] = {}
    for c in configs:
        by_url.setdefault(c.store.url, []).append(c)
    out = []
    for url, group in by_url.items():
        # fleet.yaml#model: what the retrain request carries, and the retrain flow loads
        out += [{**r.to_dict(), "config_path": member_ref(fleet_path, r.model)} for r in check_batch(group, _store(url), now=now)]
    return out


def check_config_batch(config_paths: list[str], now: datetime) -> list[dict[str, Any]]:
    """One batch of per-model retrainer.yaml files; a file that does not load is reported, not fatal."""
    from retrainer.triggers.fleet import ModelCheck, check_batch

    out: list[dict[str, Any]] = []
    by_url: dict[str, list[tuple[str, RetrainerConfig]]] = {}
    for path in config_paths:
        try:
            cfg = load_config(path)
        except RetrainerError as exc:
            out.append({**ModelCheck(Path(path).stem, error=f"{type(exc).__name__}: {exc}", outcome="error").to_dict(),
                        "config_path": path})
            continue
        by_url.setdefault(cfg.store.url, []).append((path, cfg))
    for url, group in by_url.items():
        results = check_batch([c for _, c in group], _store(url), now=now)
        out += [{**r.to_dict(), "config_path": str(Path(p).resolve())} for (p, _), r in zip(group, results, strict=True)]
    return out


# A locked database is worth a retry; a whole batch is retried, its checks are idempotent reads
# (the audit rows of a failed batch were never written: they go in one transaction at the end).
# Only I/O failures are retried: a missing schema or a bad config fails the same way 12 s later.
check_fleet_batch_task = task(check_fleet_batch, name="check-batch", retries=2, retry_delay_seconds=[2, 10],
                              retry_condition_fn=retry_on_transient)
check_config_batch_task = task(check_config_batch, name="check-batch", retries=2, retry_delay_seconds=[2, 10],
                               retry_condition_fn=retry_on_transient)


def check_fleet(fleet_path: str, now: datetime | None = None, *, batch_size: int | None = None,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """The fleet check without Prefect (``retrainer fleet check``): every batch in turn, the fleet
    control, the audit rows; no artifact, no retrain request. ``progress(models checked, total)``
    is called after each batch."""
    from retrainer.triggers.fleet import ModelCheck, fleet_control

    at = now or datetime.now(timezone.utc)
    cfg = _fleet_config(fleet_path)
    models, resolved = fleet_models(fleet_path), str(Path(fleet_path).resolve())
    rows: list[dict[str, Any]] = []
    for batch in _batches(models, batch_size or cfg.fleet.batch_size):
        rows += check_fleet_batch(resolved, batch, at)
        if progress is not None:
            progress(len(rows), len(models))
    checks = [ModelCheck(**{k: v for k, v in r.items() if k != "config_path"}) for r in rows]
    return fleet_control(checks, rate=cfg.fleet.fdr, control=cfg.fleet.control, fleet=cfg.fleet.name,
                         checked_at=at).to_dict()


def _batches(items: list[str], size: int) -> list[list[str]]:
    return [items[i: i + size] for i in range(0, len(items), size)]


def artifact_key(name: str) -> str:
    return "retrainer-fleet-" + re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def _run(fleet_path: str | None, config_paths: list[str] | None, now: datetime | None, emit_events: bool,
         batch_size: int | None) -> dict[str, Any]:
    from retrainer.tasks.notify import request_retrain
    from retrainer.triggers.fleet import ModelCheck, fleet_control, summary_markdown

    if (fleet_path is None) == (config_paths is None):
        raise ConfigError("give the fleet either as fleet_path (a fleet.yaml) or as config_paths (retrainer.yaml files)")
    at = now or datetime.now(timezone.utc)
    if fleet_path is not None:
        cfg = _fleet_config(fleet_path)
        name, rate, control = cfg.fleet.name, cfg.fleet.fdr, cfg.fleet.control
        batches = _batches(fleet_models(fleet_path), batch_size or cfg.fleet.batch_size)
        futures = check_fleet_batch_task.map(unmapped(str(Path(fleet_path).resolve())), batches, unmapped(at))
    else:
        name, rate, control = "configs", 0.05, "bh"
        futures = check_config_batch_task.map(_batches(list(config_paths or []), batch_size or DEFAULT_BATCH), unmapped(at))
    rows = [row for f in futures for row in f.result()]
    checks = [ModelCheck(**{k: v for k, v in r.items() if k != "config_path"}) for r in rows]
    summary = fleet_control(checks, rate=rate, control=control, fleet=name, checked_at=at)
    create_markdown_artifact(markdown=summary_markdown(summary), key=artifact_key(name),
                             description=f"retrainer fleet check of {name}")
    out = summary.to_dict()
    paths = {r["model"]: r["config_path"] for r in rows}
    for c in out["checks"]:
        c["config_path"] = paths.get(c["model"])
        if emit_events and c["outcome"] == "fired":
            c["event_id"] = request_retrain(c["model"], config_path=c["config_path"], reasons=c["reasons"],
                                            checked_at=at.isoformat())
    return out


@flow(name="fleet", task_runner=ThreadPoolTaskRunner(max_workers=4), validate_parameters=True)
def fleet(fleet_path: str | None = None, config_paths: list[str] | None = None, now: datetime | None = None,
          emit_events: bool = True, batch_size: int | None = None, dask_address: str | None = None) -> dict[str, Any]:
    """Check a fleet (a fleet.yaml, or per-model configs) in batches, control false retrains
    across it, publish one artifact, and request a retrain for each model cleared to.

    ``dask_address`` (``tcp://scheduler:8786``): run the batches on that existing Dask cluster
    (the same flow as a subflow on prefect-dask's runner; what a deployment sets as a parameter)."""
    if dask_address:
        return fleet.with_options(task_runner=dask_runner(dask_address))(
            fleet_path=fleet_path, config_paths=config_paths, now=now, emit_events=emit_events, batch_size=batch_size)
    return _run(fleet_path, config_paths, now, emit_events, batch_size)


def quiet_dask_logs() -> None:
    """The cluster's INFO lines (scheduler, nanny, client) are not the user's business.

    ``LocalCluster(silence_logs=...)`` only quiets the ``distributed`` logger's own handlers; its
    records still propagate to the root handler Prefect installs, which printed ~30 INFO lines
    per run. Raised to WARNING unless the user asked for debug output (``RETRAINER_DEBUG=1``)."""
    if not debug_requested():
        for name in ("distributed", "prefect.task_runner.dask"):  # the latter: "Connecting to ..." lines
            logging.getLogger(name).setLevel(logging.WARNING)


def dask_runner(address: str | None = None, n_workers: int = 2) -> Any:
    """prefect-dask's runner: an existing scheduler by ``address``, else a local cluster."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ConfigError("the Dask task runner needs the extra: pip install 'retrainer[dask]'") from exc
    quiet_dask_logs()
    if address:
        return DaskTaskRunner(address=address)
    # The workers are processes of their own: Prefect's console handler there prints every task
    # failure with its traceback (a RetrainerError included) and its own server's INFO lines. The
    # CLI reports a failure in one line; RETRAINER_DEBUG=1 keeps the workers' consoles.
    env = {} if debug_requested() else {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "CRITICAL"}
    return DaskTaskRunner(cluster_kwargs={"n_workers": n_workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None, "silence_logs": logging.ERROR, "env": env})


def fleet_on_dask(fleet_path: str | None = None, config_paths: list[str] | None = None, now: datetime | None = None, *,
                  address: str | None = None, n_workers: int = 2, emit_events: bool = True,
                  batch_size: int | None = None) -> dict[str, Any]:
    """The same flow on a Dask cluster (``address``), or a local one of ``n_workers`` processes."""
    try:
        return fleet.with_options(task_runner=dask_runner(address, n_workers))(
            fleet_path=fleet_path, config_paths=config_paths, now=now, emit_events=emit_events, batch_size=batch_size)
    except OSError as exc:  # distributed's connect timeout: say which scheduler and what to do
        if address is None:
            raise
        raise ConfigError(f"could not reach the Dask scheduler at {address} ({exc}); check the address "
                          "(tcp://host:8786) and that the scheduler runs, or use a local cluster") from exc
