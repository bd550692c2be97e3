"""Retrain runs: started by the retrain flow, finished exactly once."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.errors import StoreError
from retrainer.metrics import metric_differences
from retrainer.store.records import RetrainRun, from_epoch, to_epoch
from retrainer.store.schema import retrain_runs as t
from retrainer.windows import RetrainRecord

# The retrain flow's outcomes. A run that trained (whatever the gate or the race said) counts
# as a retrain for cooldowns and schedules; a failed or cancelled one does not.
RETRAINED_STATUSES = ("success", "no_improvement", "superseded")
FINAL_STATUSES = (*RETRAINED_STATUSES, "failed", "cancelled")


def start(conn: Connection, model_name: str, *, flow_run_id: str | None, reasons: list[str], started_at: datetime) -> int:
    return int(
        conn.execute(
            sa.insert(t)
            .values(
                model_name=model_name,
                flow_run_id=flow_run_id,
                reasons=[str(r) for r in reasons],
                status="running",
                started_at=to_epoch(started_at),
            )
            .returning(t.c.id)
        ).scalar_one()
    )


def finish(
    conn: Connection,
    run_id: int,
    *,
    status: str,
    metrics: dict[str, Any] | None,
    version: str | None,
    error: str | None,
    finished_at: datetime,
) -> None:
    if status not in FINAL_STATUSES:
        raise StoreError(f"run status {status!r} is not one of {', '.join(FINAL_STATUSES)}")
    done = conn.execute(
        sa.update(t)
        .where(t.c.id == run_id, t.c.status == "running")
        .values(status=status, metrics=metrics or {}, version=version, error=error, finished_at=to_epoch(finished_at))
    ).rowcount
    if done != 1:
        exists = conn.execute(sa.select(t.c.status).where(t.c.id == run_id)).scalar_one_or_none()
        if exists is None:
            raise StoreError(f"no retrain run with id {run_id}")
        raise StoreError(f"retrain run {run_id} already finished with status {exists!r}")


def _run(r: Any) -> RetrainRun:
    return RetrainRun(
        id=r.id,
        model_name=r.model_name,
        flow_run_id=r.flow_run_id,
        reasons=list(r.reasons or []),
        status=r.status,
        started_at=from_epoch(r.started_at),  # type: ignore[arg-type]
        finished_at=from_epoch(r.finished_at),
        metrics=r.metrics,
        version=r.version,
        error=r.error,
    )


def read(conn: Connection, model_name: str, limit: int) -> list[RetrainRun]:
    q = sa.select(t).where(t.c.model_name == model_name).order_by(t.c.started_at.desc(), t.c.id.desc()).limit(limit)
    return [_run(r) for r in conn.execute(q)]


def get(conn: Connection, run_id: int) -> RetrainRun | None:
    r = conn.execute(sa.select(t).where(t.c.id == run_id)).one_or_none()
    return None if r is None else _run(r)


def last_retrain(conn: Connection, model_name: str) -> datetime | None:
    at = conn.execute(
        sa.select(sa.func.max(t.c.finished_at)).where(
            t.c.model_name == model_name, t.c.status.in_(RETRAINED_STATUSES)
        )
    ).scalar_one()
    return from_epoch(at)


def last_retrains(conn: Connection, models: list[str]) -> dict[str, datetime | None]:
    """:func:`last_retrain` of many models in one query per 400."""
    out: dict[str, datetime | None] = {m: None for m in models}
    for i in range(0, len(models), 400):
        q = (sa.select(t.c.model_name, sa.func.max(t.c.finished_at))
             .where(t.c.model_name.in_(models[i: i + 400]), t.c.status.in_(RETRAINED_STATUSES)).group_by(t.c.model_name))
        out.update({m: from_epoch(at) for m, at in conn.execute(q)})
    return out


def history(conn: Connection, model_name: str, as_of: datetime, limit: int) -> list[RetrainRecord]:
    """Runs that trained a model and had finished by ``as_of``, most recent first.

    ``metrics`` are the candidate's holdout metrics and ``duration_s`` the measured run time,
    both as the retrain flow records them in the run's ``metrics`` (older runs may lack either).
    ``offline_delta`` is candidate − champion per metric on the run's holdout (both recorded on the
    same rows; None without a champion), and ``champion_since`` when the champion it was compared
    with was registered: the newest earlier run the gate accepted (None when there was none) —
    its deployment may have come later (a rollout), so that champion's age is at most this old.
    """
    earlier = t.alias("earlier")
    since = (
        sa.select(sa.func.max(earlier.c.finished_at))
        .where(earlier.c.model_name == t.c.model_name, earlier.c.status == "success",
               earlier.c.finished_at < t.c.finished_at)
        .scalar_subquery()
    )
    q = (
        sa.select(t.c.finished_at, t.c.metrics, t.c.status, t.c.version, since.label("champion_since"))
        .where(t.c.model_name == model_name, t.c.status.in_(RETRAINED_STATUSES), t.c.finished_at <= to_epoch(as_of))
        .order_by(t.c.finished_at.desc(), t.c.id.desc())
        .limit(limit)
    )
    out = []
    for r in conn.execute(q):
        metrics = r.metrics or {}
        candidate = metrics.get("candidate") or {}
        duration = metrics.get("duration_s")
        out.append(RetrainRecord(
            at=from_epoch(r.finished_at),  # type: ignore[arg-type]
            metrics={k: float(v) for k, v in candidate.items() if isinstance(v, (int, float))},
            duration_s=None if duration is None else float(duration),
            status=r.status,
            version=r.version,
            # The flow evaluates candidate and champion on the same holdout: a paired difference.
            offline_delta=metric_differences(candidate, metrics.get("champion")) or None,
            champion_since=None if r.champion_since is None else from_epoch(r.champion_since),
        ))
    return out


def _usable(delta: Any) -> bool:
    mean, se = (delta or {}).get("mean"), (delta or {}).get("se")
    return (isinstance(mean, (int, float)) and isinstance(se, (int, float))
            and math.isfinite(mean) and math.isfinite(se))


def _offline_runs(model_name: str):
    return (
        sa.select(t.c.version, t.c.metrics)
        .where(t.c.model_name == model_name, t.c.version.is_not(None), t.c.status.in_(RETRAINED_STATUSES))
        .order_by(t.c.finished_at.desc(), t.c.id.desc())
    )


def offline_record(conn: Connection, model_name: str, version: str) -> dict[str, Any] | None:
    """The holdout comparison the retrain flow recorded for ``version`` (``metrics["offline_delta"]``:
    metric, mean, se, n, interval_95, disagreement) from the newest run that registered it with a
    usable one; None when none did (no champion then, an undefined metric, or an older run)."""
    for _, metrics in conn.execute(_offline_runs(model_name).where(t.c.version == str(version))):
        delta = (metrics or {}).get("offline_delta")
        if _usable(delta):
            return dict(delta)
    return None


def offline_delta(conn: Connection, model_name: str, version: str) -> tuple[float, float] | None:
    """(Δ_off, its standard error) of ``version``: candidate - champion on the gate metric, same holdout."""
    record = offline_record(conn, model_name, version)
    return None if record is None else (float(record["mean"]), float(record["se"]))


def latest_offline_version(conn: Connection, model_name: str) -> str | None:
    """The newest version registered with a usable offline difference (the next rollout's, usually)."""
    for version, metrics in conn.execute(_offline_runs(model_name)):
        if _usable((metrics or {}).get("offline_delta")):
            return str(version)
    return None
