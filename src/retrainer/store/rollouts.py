"""Rollouts: one row per challenger on its way to traffic, and the stage it is in.

A stage moves only by compare-and-set (``UPDATE ... WHERE stage = :expected``) in the same
transaction as its ledger row, so two rollout flows running at once cannot both move it and
the ledger never lacks a move the table has made. At most one rollout per model is in flight
(staged, shadow or ab): the partial unique index ``ux_rollouts_in_flight`` refuses a second.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from retrainer.errors import RolloutError
from retrainer.store import ledger, runs
from retrainer.store.records import from_epoch, to_epoch
from retrainer.store.schema import IN_FLIGHT_STAGES, ROLLOUT_STAGES
from retrainer.store.schema import labels as labels_table
from retrainer.store.schema import rollouts as t


@dataclass(frozen=True)
class Rollout:
    id: int
    model_name: str
    version: str
    champion_version: str | None
    mode: str
    stage: str
    created_at: datetime
    stage_started_at: datetime
    updated_at: datetime
    ab_test_id: int | None
    run_id: int | None
    decision: str | None
    explanation: str | None
    evidence: dict[str, Any] | None
    stages: list[dict[str, Any]]  # [{"stage": ..., "at": iso time}], oldest first

    @property
    def in_flight(self) -> bool:
        return self.stage in IN_FLIGHT_STAGES

    def started(self, stage: str) -> datetime | None:
        """When the rollout (last) entered ``stage``; None if it never did."""
        hits = [s for s in self.stages if s["stage"] == stage]
        return datetime.fromisoformat(hits[-1]["at"]) if hits else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "model": self.model_name, "version": self.version, "champion": self.champion_version,
            "mode": self.mode, "stage": self.stage, "created_at": self.created_at.isoformat(),
            "stage_started_at": self.stage_started_at.isoformat(), "updated_at": self.updated_at.isoformat(),
            "ab_test_id": self.ab_test_id, "run_id": self.run_id, "decision": self.decision,
            "explanation": self.explanation, "evidence": self.evidence, "stages": self.stages,
        }


def _rollout(r: Any) -> Rollout:
    return Rollout(
        id=int(r.id), model_name=r.model_name, version=r.version, champion_version=r.champion_version, mode=r.mode,
        stage=r.stage, created_at=from_epoch(r.created_at), stage_started_at=from_epoch(r.stage_started_at),  # type: ignore[arg-type]
        updated_at=from_epoch(r.updated_at), ab_test_id=r.ab_test_id, run_id=r.run_id,  # type: ignore[arg-type]
        decision=r.decision, explanation=r.explanation, evidence=r.evidence, stages=list(r.stages or []),
    )


def _stamp(stage: str, at: datetime) -> dict[str, Any]:
    return {"stage": stage, "at": at.isoformat()}


def get(conn: Connection, rollout_id: int) -> Rollout | None:
    r = conn.execute(sa.select(t).where(t.c.id == rollout_id)).one_or_none()
    return None if r is None else _rollout(r)


def in_flight(conn: Connection, model_name: str) -> Rollout | None:
    r = conn.execute(sa.select(t).where(t.c.model_name == model_name, t.c.stage.in_(IN_FLIGHT_STAGES))).one_or_none()
    return None if r is None else _rollout(r)


def history(conn: Connection, model_name: str, stages: Sequence[str] | None = None) -> list[Rollout]:
    """Oldest first; ``stages`` keeps only rollouts in one of them."""
    q = sa.select(t).where(t.c.model_name == model_name)
    if stages is not None:
        q = q.where(t.c.stage.in_(list(stages)))
    return [_rollout(r) for r in conn.execute(q.order_by(t.c.id))]


def models(conn: Connection) -> list[str]:
    return list(conn.execute(sa.select(t.c.model_name).distinct().order_by(t.c.model_name)).scalars())


def create(
    conn: Connection, model_name: str, *, version: str, champion_version: str | None, mode: str, stage: str,
    at: datetime, actor: str, reason: str, run_id: int | None, details: Mapping[str, Any] | None,
) -> Rollout:
    """Insert a rollout in ``stage`` (``staged`` or ``queued``) with its ledger row.

    Raises RolloutError when ``staged`` and another rollout of the model is in flight.
    """
    if stage not in ("staged", "queued"):
        raise RolloutError(f"a rollout starts staged or queued, not {stage!r}")
    busy = in_flight(conn, model_name) if stage == "staged" else None
    if busy is not None:
        raise RolloutError(f"rollout {busy.id} of version {busy.version} is in flight ({busy.stage}) for "
                           f"{model_name!r}: abort it first, or queue the new one")
    when = to_epoch(at)
    try:
        new_id = conn.execute(sa.insert(t).values(
            model_name=model_name, version=version, champion_version=champion_version, mode=mode, stage=stage,
            created_at=when, stage_started_at=when, updated_at=when, run_id=run_id,
            decision=stage, explanation=reason, stages=[_stamp(stage, at)],
        ).returning(t.c.id)).scalar_one()
    except sa.exc.IntegrityError as exc:  # a racing writer on PostgreSQL: the unique index said no
        raise RolloutError(f"another rollout of {model_name!r} went in flight meanwhile: {exc.orig}") from None
    ledger.append(conn, model_name, action="rollout_start" if stage == "staged" else "rollout_queue",
                  from_version=champion_version, to_version=version, actor=actor, reason=reason, run_id=run_id,
                  at=at, details={"rollout_id": int(new_id), "stage": stage, **(details or {})})
    found = get(conn, int(new_id))
    assert found is not None
    return found


def transition(
    conn: Connection, rollout_id: int, *, expected: str, new: str, at: datetime, action: str, actor: str,
    reason: str, decision: str, evidence: Mapping[str, Any] | None, champion_version: str | None = None,
    ab_test_id: int | None = None, set_champion: bool = False,
) -> Rollout | None:
    """Move the rollout from ``expected`` to ``new`` and append its ledger row, or do nothing
    and return None when it is no longer in ``expected`` (someone else moved it first)."""
    if new not in ROLLOUT_STAGES:
        raise RolloutError(f"unknown rollout stage {new!r}: one of {', '.join(ROLLOUT_STAGES)}")
    current = get(conn, rollout_id)
    if current is None or current.stage != expected:
        return None
    values: dict[str, Any] = {
        "stage": new, "stage_started_at": to_epoch(at), "updated_at": to_epoch(at), "decision": decision,
        "explanation": reason, "evidence": None if evidence is None else dict(evidence),
        "stages": [*current.stages, _stamp(new, at)],
    }
    if ab_test_id is not None:
        values["ab_test_id"] = ab_test_id
    if set_champion:
        values["champion_version"] = champion_version
    try:
        moved = conn.execute(sa.update(t).where(t.c.id == rollout_id, t.c.stage == expected).values(**values)).rowcount
    except sa.exc.IntegrityError as exc:  # staged from queued while another went in flight (PostgreSQL race)
        raise RolloutError(f"another rollout of {current.model_name!r} is in flight: {exc.orig}") from None
    if moved != 1:
        return None
    ledger.append(conn, current.model_name, action=action,
                  from_version=champion_version if set_champion else current.champion_version,
                  to_version=current.version, actor=actor, reason=reason, run_id=current.run_id, at=at,
                  details={"rollout_id": rollout_id, "from_stage": expected, "to_stage": new,
                           "evidence": None if evidence is None else dict(evidence)})
    return get(conn, rollout_id)


def note(conn: Connection, rollout_id: int, *, at: datetime, decision: str, explanation: str,
         evidence: Mapping[str, Any] | None) -> None:
    """Record what the last look decided without moving the stage (no ledger row: a wait is not a move)."""
    conn.execute(sa.update(t).where(t.c.id == rollout_id).values(
        updated_at=to_epoch(at), decision=decision, explanation=explanation,
        evidence=None if evidence is None else dict(evidence)))


def known_labels(conn: Connection, request_ids: Sequence[str], as_of: datetime) -> dict[str, float]:
    """The labels of ``request_ids`` known at ``as_of`` (label time <= as_of): the shadow check's truth."""
    out: dict[str, float] = {}
    ids = list(dict.fromkeys(request_ids))
    for i in range(0, len(ids), 500):  # bounded IN lists
        q = sa.select(labels_table.c.request_id, labels_table.c.label).where(
            labels_table.c.request_id.in_(ids[i:i + 500]), labels_table.c.ts <= to_epoch(as_of))
        out.update({rid: float(label) for rid, label in conn.execute(q)})
    return out


# A rollout's online difference is the posterior mean the decision recorded when it moved the
# rollout to one of these (the rollout flow writes it under this key of the step's evidence).
DECISION_STAGES = ("champion", "rejected")
ONLINE_DELTA_KEY = "posterior_mean"


def _find(value: Any, key: str) -> Any:
    """The first ``key`` in a nested mapping (depth first), or None."""
    if isinstance(value, Mapping):
        if key in value:
            return value[key]
        for child in value.values():
            found = _find(child, key)
            if found is not None:
                return found
    return None


def offline_online_history(conn: Connection, model_name: str) -> list[tuple[float, float]]:
    """(offline Δ, online Δ) of the model's decided rollouts, oldest first: what fitting the
    prior's kappa and tau reads. Offline: the version's holdout difference
    (:func:`runs.offline_delta`); online: ``posterior_mean`` of the ledger row that decided the
    rollout (moved it to champion or rejected). Rollouts lacking either are left out."""
    decided: dict[int, float] = {}
    for entry in ledger.read(conn, model_name):  # oldest first: a later decision row wins
        details = entry.details or {}
        rollout_id, to_stage = details.get("rollout_id"), details.get("to_stage")
        online = _find(details.get("evidence"), ONLINE_DELTA_KEY)
        if rollout_id is not None and to_stage in DECISION_STAGES and isinstance(online, (int, float)):
            decided[int(rollout_id)] = float(online)
    out = []
    for r in history(conn, model_name):
        if r.id not in decided:
            continue
        offline = runs.offline_delta(conn, model_name, r.version)
        if offline is not None:
            out.append((offline[0], decided[r.id]))
    return out
