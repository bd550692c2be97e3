"""`retrainer demo`: the whole loop, from nothing, on embedded defaults.

A simulated calendar drives the real components: traffic goes through the prediction service's
HTTP app (router, inference log, shadow), labels come back through ``/feedback`` days
later, the warehouse receives the rows whose labels have matured, and at the end of every day
the monitor flow decides; when it fires, the retrain flow trains, gates, registers and stages a
challenger, and the rollout flow (the one ``prefect.yaml`` runs every 15 minutes) moves it on
each day: a paired shadow (``rollout.mode: auto``) judged by the posterior of challenger − champion
(docs/rollout.md), promotion when the rule says so, and the guard window — the same code paths as
``retrainer serve``, ``retrainer monitor``, ``retrainer retrain`` and ``retrainer rollout advance``.
Nothing is mocked; only the clock is simulated.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from retrainer.config import RetrainerConfig, load_config
from retrainer.demo.data import FEATURES, StreamSpec, generate_stream
from retrainer.demo.sizing import CONSECUTIVE_CHECKS, SHADOW_DAYS, StorySizing, plan_story
from retrainer.demo.world import DEFAULT_TRIGGERS, demo_config, write_config, write_warehouse
from retrainer.errors import ConfigError

if TYPE_CHECKING:
    from retrainer.store import Store

MARKER = ".retrainer-demo"
DEMO_LATENCY_RATIO = 20.0  # rollout.shadow.max_latency_ratio in the demo (see demo_settings)
# What a previous demo run leaves behind; only these are removed when the workdir is reused.
# The store's prediction spool goes too: a crashed run's segments would otherwise be replayed
# into the next run's fresh store.
_OWN_FILES = ("retrainer.yaml", "retrainer.db", "retrainer.db-spool", "mlflow.db", "warehouse.db", "mlartifacts",
              "report", MARKER)


@dataclass(frozen=True)
class DemoSpec:
    """The size of the story. The defaults run in a few minutes on two cores; everything the
    demo's retrainer.yaml sizes by volume follows ``rows_per_day`` (:mod:`retrainer.demo.sizing`)."""

    days: int = 40
    rows_per_day: int = 200
    drift_day: int = 22
    history_days: int = 14  # labelled history the first model is trained on
    seed: int = 7

    def stream(self) -> StreamSpec:
        return StreamSpec(days=self.days, rows_per_day=self.rows_per_day, drift_day=self.drift_day, seed=self.seed)

    def sizing(self) -> StorySizing:
        """The volume-dependent settings, or a one-line ConfigError when this story cannot be told."""
        return plan_story(days=self.days, rows_per_day=self.rows_per_day, drift_day=self.drift_day,
                          history_days=self.history_days)


def demo_settings(spec: DemoSpec = DemoSpec()) -> dict[str, Any]:
    """The demo's retrainer.yaml, sized for its traffic. The rollout is the default rule
    (``rollout.mode: auto``: a paired shadow promoted or rejected by the posterior, with
    ``rollout.decision``'s defaults); only the shadow's comparisons follow the traffic."""
    size = spec.sizing()
    return demo_config(
        rollout={
            "mode": "auto",
            # The demo's host runs the whole simulation (traffic, training, monitoring) at full CPU,
            # often beside other work: a shadow process niced below it is starved, and the p99 of its
            # calls (one hiccup decides it) rejected same-sized challengers at 3-12x the champion's p99
            # on a loaded 2-core box. Here nothing is production to protect, and the latency guardrail
            # (a real service's concern) is given room; the story is the paired posterior.
            "shadow": {"sample": 1.0, "duration": f"{SHADOW_DAYS}d", "min_comparisons": size.shadow_comparisons,
                       "nice": 0, "max_latency_ratio": DEMO_LATENCY_RATIO},
        },
        # Drift alone is a reason to look, not to retrain: wait until a second signal
        # (performance on the labels that have come back) agrees, three checks in a row, so the
        # new model is trained on enough of the new world.
        policy={"mode": "at_least", "k": 2, "consecutive": CONSECUTIVE_CHECKS, "cooldown": "4d"},
        data={"window": f"{size.train_days}d", "min_rows": size.min_rows},
        triggers=demo_triggers(size),
    )


def demo_triggers(size: StorySizing) -> list[dict[str, Any]]:
    """The embedded triggers with windows that hold enough rows at the demo's traffic.

    Labels come back 1-5 days late: `performance` judges the matured window (maturity: auto),
    `estimated_performance` the last days from the champion's calibrated scores alone.
    Once the triggers size their own windows from the evidence (``window: auto``, issue 21), the
    explicit windows below give way to it: this is the one place to switch.
    """
    windows = {"performance": size.performance_days, "drift": size.drift_days}
    triggers = [{**t, "window": f"{windows[t['type']]}d"} if t["type"] in windows else dict(t) for t in DEFAULT_TRIGGERS]
    return [*triggers, {"type": "estimated_performance", "window": f"{size.drift_days}d", "drop": {"f1": 0.05}}]


@dataclass
class DayRecord:
    day: int
    at: datetime
    monitor: dict[str, Any]
    events: list[str] = field(default_factory=list)


@dataclass
class DemoResult:
    workdir: Path
    config_path: Path
    spec: DemoSpec
    days: list[DayRecord] = field(default_factory=list)
    retrains: list[dict[str, Any]] = field(default_factory=list)
    shadow: list[dict[str, Any]] = field(default_factory=list)
    rollouts: list[dict[str, Any]] = field(default_factory=list)  # each rollout: stages with dates and days
    champion_moves: list[dict[str, Any]] = field(default_factory=list)  # promote / rollback ledger rows, with days
    reports: dict[str, str] = field(default_factory=dict)

    def fires(self) -> dict[str, list[int]]:
        """Trigger label -> the days it fired (a fire is a trigger's own verdict, policy aside)."""
        out: dict[str, list[int]] = {}
        for d in self.days:
            for label, check in d.monitor["checks"].items():
                out.setdefault(label, [])
                if check["fired"]:
                    out[label].append(d.day)
        return out


def prepare_workdir(workdir: Path) -> None:
    """Use ``workdir`` if it is empty, new, or a previous demo's; never wipe anything else."""
    workdir.mkdir(parents=True, exist_ok=True)
    entries = list(workdir.iterdir())
    if entries and not (workdir / MARKER).exists():
        raise ConfigError(
            f"{workdir} is not empty and was not made by `retrainer demo`: pass --workdir with a new or empty directory"
        )
    for name in _OWN_FILES:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    (workdir / MARKER).write_text("made by `retrainer demo`; rerunning the demo replaces this directory's demo files\n")


class SimulatedClock:
    """The demo's notion of now; the prediction service stamps predictions and labels with it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@contextmanager
def _service(cfg: RetrainerConfig, clock: SimulatedClock) -> Iterator[tuple[Any, Any]]:
    """The real prediction service and its HTTP app, in process (no socket needed)."""
    import warnings

    with warnings.catch_warnings():
        # Starlette warns at import that its test client prefers httpx2; the demo drives the app
        # in process on purpose, and a third-party deprecation notice is no part of its story.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
        from fastapi.testclient import TestClient

    from retrainer.deployments.serving.app import create_app
    from retrainer.deployments.serving.serving import PredictionService

    service = PredictionService.from_config(cfg, reload_interval=3600, clock=clock)
    app = create_app(service)
    with TestClient(app, raise_server_exceptions=True) as client:
        yield service, client


def run_demo(
    workdir: Path,
    spec: DemoSpec = DemoSpec(),
    *,
    progress: Callable[[str, int, int], None] | None = None,
) -> DemoResult:
    """Run the story in ``workdir`` and write its report there."""
    from retrainer.flows.monitor import monitor
    from retrainer.flows.retrain import retrain
    from retrainer.flows.rollout import rollout as rollout_flow
    from retrainer.store import Store

    spec.sizing()  # refuse a story that cannot be told before touching the workdir
    prepare_workdir(workdir)
    config_path = write_config(workdir, demo_settings(spec))
    cfg = load_config(config_path)
    result = DemoResult(workdir=workdir, config_path=config_path, spec=spec)
    stream = generate_stream(spec.stream())
    start = spec.stream().start
    day_of = ((stream["ts"] - pd.Timestamp(start)).dt.total_seconds() // 86400).astype(int)
    label_day = ((stream["label_ts"] - pd.Timestamp(start)).dt.total_seconds() // 86400).astype(int)
    step = progress or (lambda *_: None)

    with Store.open(cfg.store.url) as store:
        store.init()
    # History: the labelled rows that had matured when the first model was trained.
    t0 = start + timedelta(days=spec.history_days)
    write_warehouse(cfg.data.source.url, stream[label_day < spec.history_days])
    step("training the first model", 0, 1)
    first = retrain(config_path=str(config_path), force=True, reasons=["initial"], now=t0)
    result.retrains.append({"day": spec.history_days - 1, **first})  # at the end of the last day of history
    step("training the first model", 1, 1)

    clock = SimulatedClock(t0)
    store = Store.open(cfg.store.url)
    with _service(cfg, clock) as (service, client):
        for day in range(spec.history_days, spec.days):
            step("simulating days", day - spec.history_days, spec.days - spec.history_days)
            _traffic(client, clock, stream[day_of == day])
            matured = stream[label_day == day]
            clock.now = start + timedelta(days=day + 1)
            _feedback(client, matured)
            write_warehouse(cfg.data.source.url, matured)
            service.writer.flush()
            service.shadow.wait_idle()
            service.writer.flush()  # the shadow's comparisons, handed to the writer while we waited
            now = clock.now
            # Move the rollout first: the check then sees the champion that serves tomorrow.
            events = _rollout_step(rollout_flow(config_path=str(config_path), now=now), now, result)
            service.router.refresh()
            checked = monitor(config_path=str(config_path), now=now)
            record = DayRecord(day=day, at=now, monitor=checked, events=events)
            if checked["should_retrain"] and store.rollout_in_flight(cfg.model.name) is not None:
                record.events.append("retrain wanted, but a challenger is still in rollout")
            elif checked["should_retrain"]:
                out = retrain(config_path=str(config_path), reasons=list(checked["reasons"]), now=now)
                result.retrains.append({"day": day, **out})
                record.events.append(f"retrain ({', '.join(checked['reasons'])}) -> {out['status']}"
                                     + (f", version {out['version']}" if out.get("version") else ""))
                if out["status"] == "success" and (r := store.rollout_in_flight(cfg.model.name)) is not None:
                    record.events.append(f"version {r.version} {r.stage} (rollout {r.id})")
            service.router.refresh()
            result.days.append(record)
        step("simulating days", spec.days - spec.history_days, spec.days - spec.history_days)
    _record_rollouts(store, cfg.model.name, start, result)
    store.close()

    from retrainer.demo.report import write_report

    step("writing the report", 0, 1)
    result.reports = write_report(result, stream, cfg)
    step("writing the report", 1, 1)
    return result


def _day(at: datetime | str, start: datetime) -> int:
    """The demo day an instant belongs to. The flows run at midnight, the end of the day just
    simulated: an instant exactly on a day boundary belongs to the day it ends, the one the day-by-day
    table lists it under (a retrain on day 26 stages its challenger on day 26, not 27)."""
    when = datetime.fromisoformat(at) if isinstance(at, str) else at
    return math.ceil((when - start).total_seconds() / 86400) - 1


def _rollout_step(step: dict[str, Any], now: datetime, result: DemoResult) -> list[str]:
    """What one run of the rollout flow did, as the day's event (a look that keeps collecting shows
    its posterior); the shadow's final figures kept for the report."""
    from retrainer.deployments.rollout.posterior import summary_line

    evidence = step.get("evidence") or {}
    facts = evidence.get("facts") or {}
    if step.get("stage_before") == "shadow" and step["action"] != "waiting" and "requests" in facts:
        result.shadow.append({"version": step["version"], "at": now.isoformat(), "n": facts["requests"],
                              "agreement_rate": facts.get("agreement"), "outcome": step["action"]})
    if step["action"] == "idle":
        return []
    if step["action"] == "waiting":
        line = summary_line(evidence)
        return [] if line is None else [f"rollout {step['rollout_id']} (version {step['version']}): collecting — {line}"]
    return [f"rollout {step['rollout_id']} (version {step['version']}): {step['action']} — {step['explanation']}"]


def _record_rollouts(store: Store, name: str, start: datetime, result: DemoResult) -> None:
    """Every rollout's stages with their dates and demo days, its posterior trail (one look a day:
    posterior mean, 95% interval, P(worse than the margin), expected loss, pair counts; docs/rollout.md)
    with demo days, and every promotion / rollback."""
    for r in store.rollouts(name):
        d = r.to_dict()
        trail = (d["evidence"] or {}).get("trail") or []
        result.rollouts.append({k: d[k] for k in ("id", "version", "champion", "stage", "decision", "explanation")}
                               | {"stages": [{**s, "day": _day(s["at"], start)} for s in d["stages"]],
                                  "trail": [{**t, "day": _day(t["at"], start)} for t in trail]})
    result.champion_moves = [
        {"action": e.action, "from": e.from_version, "to": e.to_version, "at": e.at.isoformat(), "day": _day(e.at, start)}
        for e in store.ledger(name) if e.action in ("promote", "rollback")
    ]


def _traffic(client: Any, clock: SimulatedClock, rows: pd.DataFrame) -> None:
    """Each row is one request at its own time, for its own customer (the A/B unit)."""
    names = [f.name for f in FEATURES]
    records = rows[names].astype(object).where(rows[names].notna(), None).to_dict("records")
    for ts, rid, unit, features in zip(rows["ts"], rows["request_id"], rows["unit_id"], records):
        clock.now = ts.to_pydatetime(warn=False)
        response = client.post("/predict", json={"features": features, "unit_id": unit, "request_id": rid})
        if response.status_code != 200:
            raise RuntimeError(f"/predict answered {response.status_code}: {response.text}")


def _feedback(client: Any, rows: pd.DataFrame, batch: int = 500) -> None:
    labels = [{"request_id": rid, "label": float(y), "ts": ts.isoformat()}
              for rid, y, ts in zip(rows["request_id"], rows["label"], rows["label_ts"])]
    for i in range(0, len(labels), batch):
        response = client.post("/feedback", json={"labels": labels[i:i + batch]})
        if response.status_code != 200:
            raise RuntimeError(f"/feedback answered {response.status_code}: {response.text}")
