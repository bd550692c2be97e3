"""``run_check``: one monitoring check of one model, from the store to an audit trail.

This is the plain function behind ``retrainer check`` and the monitor flow. It imports
neither Prefect nor MLflow, so a check costs what its queries cost.

1. build the :class:`TriggerContext` at ``now``: the store is the window source, the last
   retrain is the latest successful run, the champion is given (``retrainer check`` and the
   flows pass ``resolve_champion``'s answer: that needs MLflow, a layer above) or read from the
   store's champion pointer, with the creation time taken from its reference profile's
   ``registered_at``; the reference is that version's profile;
2. read the hysteresis history: earlier *raw* policy outcomes, kept in the audit table as the
   policy row's ``evidence["raw_fired"]``;
3. evaluate the policy (every trigger, then cooldown/hysteresis);
4. write each trigger's Decision and the policy's to the audit table under one ``check_id``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from retrainer.config import RetrainerConfig
from retrainer.profiles import profile_arrays
from retrainer.triggers.context import ChampionInfo, TriggerContext
from retrainer.triggers.decision import Decision
from retrainer.triggers.policy import CheckResult, Policy, build_policy

if TYPE_CHECKING:
    from retrainer.store import Store

POLICY_ROLE = "policy"


@runtime_checkable
class ChampionSource(Protocol):
    """Where the champion pointer and its reference profile are read (the SQL store)."""

    def champion(self, model_name: str) -> str | None: ...

    def reference_profile(self, model_name: str, version: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class CheckRun(CheckResult):
    """A :class:`CheckResult` with where it was recorded: ``check_id`` ("" when not written)."""

    check_id: str = ""
    evaluated_at: datetime | None = None


def champion_from_store(store: ChampionSource, model_name: str) -> tuple[ChampionInfo | None, dict[str, Any] | None]:
    """The store's champion pointer and its reference profile (``created_at`` = profile's ``registered_at``)."""
    version = store.champion(model_name)
    if version is None:
        return None, None
    profile = store.reference_profile(model_name, version)
    return ChampionInfo(version, created_at=registered_at(profile)), profile


def reads_histograms(cfg: RetrainerConfig) -> bool:
    """Whether a drift trigger of ``cfg`` may read ingest-time histograms (``read`` not ``raw``)."""
    return any(t.type == "drift" and t.params.get("read", "auto") != "raw" and not t.params.get("prediction")
               for t in cfg.triggers)


def lazy_champion(store: Store, model_name: str, version: str) -> tuple[datetime | None, Any] | None:
    """``(registered_at, reference)`` without loading the profile: the version's frozen histogram
    bins (frozen and counted once here for a new champion) keep its registration time, and the
    profile loads on first use. None when it has no profile to bin (the caller loads as before)."""
    from retrainer.frozen import LazyFrozenMapping

    ref = store.ensure_histograms(model_name, version)
    if ref is None:
        return None
    created = None if ref.registered_at is None else datetime.fromtimestamp(ref.registered_at, tz=timezone.utc)
    return created, LazyFrozenMapping(lambda: profile_arrays(store.reference_profile(model_name, version) or {}))


def registered_at(profile: dict[str, Any] | None) -> datetime | None:
    """When the profiled version was registered (naive timestamps are UTC), or None if unrecorded."""
    if not profile or not profile.get("registered_at"):
        return None
    created = datetime.fromisoformat(str(profile["registered_at"]))
    return created.replace(tzinfo=timezone.utc) if created.tzinfo is None else created


def raw_history(store: Store, model_name: str, until: datetime, *, keep: int) -> list[bool]:
    """The last ``keep`` raw policy outcomes recorded before ``until``, oldest first."""
    if keep <= 0:
        return []
    # Only the newest ``keep`` policy rows: O(keep), however long the audit table grows.
    rows = store.evaluations(model_name, until=until, role=POLICY_ROLE, limit=keep)
    return [bool(e.evidence.get("raw_fired")) for e in rows]


def audit_rows(result: CheckResult, check_id: str) -> list[dict[str, Any]]:
    """One row per trigger, then the policy's (with ``raw_fired`` so hysteresis can be replayed)."""
    rows = [{"check_id": check_id, **d.to_dict()} for d in result.children]
    policy: Decision = result.decision
    evidence = {k: v for k, v in policy.to_dict()["evidence"].items() if k != "children"}  # children have rows
    evidence.pop("raw", None)
    evidence |= {"role": POLICY_ROLE, "raw_fired": result.raw.fired, "raw_status": result.raw.status,
                 "raw_reason": result.raw.reason, "should_retrain": result.should_retrain, "reasons": result.reasons}
    rows.append({"check_id": check_id, **policy.to_dict(), "evidence": evidence})
    return rows


def run_check(
    cfg: RetrainerConfig,
    *,
    store: Store,
    now: datetime | None = None,
    policy: Policy | None = None,
    write_audit: bool = True,
    champion: ChampionInfo | None = None,
    history: Sequence[bool] | None = None,
) -> CheckRun:
    """Evaluate ``cfg``'s policy for ``cfg.model.name`` at ``now`` (default: the current time).

    ``champion``: who the champion is, as the layers above answer it (``retrainer check`` and the
    monitor flow pass :func:`retrainer.deployments.rollout.promotion.resolve_champion`'s version); its
    ``created_at`` defaults to the reference profile's ``registered_at``. Without it, the store's
    pointer. ``history`` overrides the raw outcomes read from the audit table.
    """
    now = now or datetime.now(timezone.utc)
    model = cfg.model.name
    policy = policy or build_policy(cfg)
    version = champion.version if champion is not None else store.champion(model)
    lazy = None
    if version is not None and reads_histograms(cfg):
        # Re-bin once for a new champion; then the drift check reads counts, never the profile.
        lazy = lazy_champion(store, model, version)
    if lazy is not None:
        assert version is not None
        created, reference = lazy
        if champion is None:
            champion = ChampionInfo(version, created_at=created)
        elif champion.created_at is None and created is not None:
            champion = ChampionInfo(champion.version, created_at=created, run_id=champion.run_id, tags=champion.tags)
    elif champion is None:
        champion, reference = champion_from_store(store, model)
    else:
        reference = store.reference_profile(model, champion.version)
        if champion.created_at is None and (created := registered_at(reference)) is not None:
            champion = ChampionInfo(champion.version, created_at=created, run_id=champion.run_id, tags=champion.tags)
    if reference is not None and lazy is None:
        reference = profile_arrays(reference)  # freezing arrays is O(1), lists O(values)
    ctx = TriggerContext(model_name=model, now=now, source=store, last_retrain_at=store.last_retrain_at(model),
                         champion=champion, reference=reference)
    if history is None:
        history = raw_history(store, model, now, keep=policy.guard.window - 1)
    result = policy.check(ctx, history)
    check_id = ""
    if write_audit:
        check_id = uuid.uuid4().hex
        store.record_evaluations(model, now, audit_rows(result, check_id))
    return CheckRun(result.decision, result.raw, result.children, result.counted, check_id=check_id, evaluated_at=now)


__all__ = ["ChampionSource", "CheckRun", "POLICY_ROLE", "audit_rows", "champion_from_store", "lazy_champion", "raw_history",
           "reads_histograms", "run_check"]
