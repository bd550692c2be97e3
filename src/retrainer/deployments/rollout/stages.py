"""Moving a challenger through shadow and A/B: the plain functions behind ``retrainer shadow``,
``retrainer ab``, the retrain flow's hand-over and the demo.

Every step is a ledger row. Running servers read the wanted state (champion, A/B test, shadow
target) from the store and the registry and pick changes up on their next reload.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from retrainer.config import RetrainerConfig
from retrainer.deployments.rollout.ab import new_salt
from retrainer.deployments.rollout.promotion import resolve_champion
from retrainer.errors import RolloutError
from retrainer.registry import CHALLENGER

if TYPE_CHECKING:
    from retrainer.registry import Registry
    from retrainer.store import Store


@dataclass(frozen=True)
class ShadowState:
    version: str | None  # the version answering a copy of the traffic, or None
    sample: float
    champion: str | None


# -- the shadow switch, kept in the promotion ledger ---------------------------------------------
#
# ``shadow_start`` (to_version = the shadow version) turns shadowing on, ``shadow_stop`` off;
# the latest of the two wins. The sampling share is the entry's ``details["sample"]``; without
# it, ``rollout.shadow.sample`` applies. Rows written before revision 0004 carried the share in
# the reason as ``[sample=0.25]``; that is still read.

SHADOW_ACTIONS = ("shadow_start", "shadow_stop")


def _valid_sample(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if 0.0 < v <= 1.0 else None


def _legacy_sample(reason: str) -> float | None:
    m = re.search(r"\[sample=([0-9]*\.?[0-9]+(?:e-?\d+)?)\]", reason or "")
    return _valid_sample(m.group(1)) if m else None


def shadow_target(
    entries: Sequence[Any], *, rollout_mode: str, challenger: str | None, default_sample: float
) -> tuple[str | None, float]:
    """(shadow version or None, sample share) from ledger entries (oldest first).

    With no shadow entry at all and ``rollout.mode: shadow``, the ``challenger`` alias is shadowed.
    """
    last = next((e for e in reversed(entries) if e.action in SHADOW_ACTIONS), None)
    if last is None:
        return (challenger, default_sample) if rollout_mode == "shadow" and challenger else (None, default_sample)
    if last.action == "shadow_stop":
        return None, default_sample
    version = last.to_version or challenger
    details = getattr(last, "details", None) or {}
    sample = _valid_sample(details.get("sample")) if "sample" in details else _legacy_sample(last.reason)
    return version, default_sample if sample is None else sample


def champion_version(cfg: RetrainerConfig, store: Store, registry: Registry) -> str | None:
    return resolve_champion(registry, store)


def shadow_state(cfg: RetrainerConfig, store: Store, registry: Registry) -> ShadowState:
    version, sample = shadow_target(store.ledger(cfg.model.name), rollout_mode=cfg.rollout.resolved_mode,
                                    challenger=registry.alias_version(CHALLENGER),
                                    default_sample=cfg.rollout.shadow.sample)
    return ShadowState(version, sample, champion_version(cfg, store, registry))


def start_shadow(
    cfg: RetrainerConfig, store: Store, registry: Registry, *, version: str, actor: str,
    sample: float | None = None, run_id: int | None = None, at: datetime | None = None,
) -> ShadowState:
    """Mirror traffic to ``version`` (also staged as the challenger alias)."""
    v = registry.check_loadable(str(registry.get_version(version).version))  # refused unread if unsafe
    champion = champion_version(cfg, store, registry)
    if v == champion:
        raise RolloutError(f"version {v} is the champion: shadow a different version")
    if sample is not None and not 0.0 < sample <= 1.0:
        raise RolloutError(f"the shadow sample must be in (0, 1], got {sample}")
    registry.set_alias(CHALLENGER, v)
    note = f"shadow {v} against champion {champion}" + ("" if sample is None else f" on {sample:.0%} of requests")
    store.append_ledger(cfg.model.name, action="shadow_start", from_version=champion, to_version=v, actor=actor,
                        reason=note, run_id=run_id, at=at, details=None if sample is None else {"sample": sample})
    return ShadowState(v, cfg.rollout.shadow.sample if sample is None else sample, champion)


def start_guard_shadow(
    cfg: RetrainerConfig, store: Store, *, replaced: str, champion: str, rollout_id: int, actor: str,
    at: datetime | None = None,
) -> ShadowState:
    """After a promotion: the replaced champion ``replaced`` keeps answering a copy of the traffic
    for the guard window, so the guard compares the two on the same requests. Unlike
    :func:`start_shadow` it leaves the challenger alias alone (the replaced model is no challenger);
    ``details["guard_rollout_id"]`` marks the row as the guard's."""
    sample = cfg.rollout.shadow.sample
    store.append_ledger(cfg.model.name, action="shadow_start", from_version=champion, to_version=replaced, actor=actor,
                        reason=f"guard of rollout {rollout_id}: replaced champion {replaced} shadows the new champion "
                        f"{champion}", at=at, details={"sample": sample, "guard_rollout_id": rollout_id})
    return ShadowState(replaced, sample, champion)


def guard_shadow_rollout(cfg: RetrainerConfig, store: Store) -> int | None:
    """The rollout whose guard the running shadow serves (its ``shadow_start`` row's
    ``guard_rollout_id``), or None when the shadow is off or a challenger's."""
    last = next((e for e in reversed(store.ledger(cfg.model.name)) if e.action in SHADOW_ACTIONS), None)
    if last is None or last.action != "shadow_start":
        return None
    rid = (last.details or {}).get("guard_rollout_id")
    return None if rid is None else int(rid)


def stop_shadow(
    cfg: RetrainerConfig, store: Store, registry: Registry, *, actor: str, reason: str = "shadow stopped",
    at: datetime | None = None,
) -> str:
    """Stop mirroring; returns the version that was shadowed."""
    state = shadow_state(cfg, store, registry)
    if state.version is None:
        raise RolloutError(f"no shadow deployment is running for {cfg.model.name!r}")
    store.append_ledger(cfg.model.name, action="shadow_stop", from_version=state.champion,
                        to_version=state.version, actor=actor, reason=reason, at=at)
    return state.version


def start_ab(
    cfg: RetrainerConfig, store: Store, registry: Registry, *, challenger: str, actor: str,
    split: float | None = None, salt: str | None = None, run_id: int | None = None, at: datetime | None = None,
) -> Any:
    """Start an A/B test of ``challenger`` against the champion; returns the store's ABTest."""
    name = cfg.model.name
    champion = champion_version(cfg, store, registry)
    if champion is None:
        raise RolloutError(f"{name!r} has no champion yet: there is nothing to test against")
    version = registry.check_loadable(str(registry.get_version(challenger).version))  # refused unread if unsafe
    if version == champion:
        raise RolloutError(f"version {version} is already the champion: test a different version")
    ab = cfg.rollout.ab.model_copy(update={"split": cfg.rollout.ab.split if split is None else split,
                                           "salt": salt or cfg.rollout.ab.salt or new_salt()})
    if not 0.0 < ab.split < 1.0:
        raise RolloutError(f"the split must be between 0 and 1 (exclusive), got {ab.split}")
    test_id = store.start_ab_test(name, champion_version=champion, challenger_version=version, split=ab.split,
                                  salt=ab.salt, config=ab.model_dump(mode="json"), started_at=at)
    registry.set_alias(CHALLENGER, version)
    store.append_ledger(name, action="ab_start", from_version=champion, to_version=version, actor=actor,
                        reason=f"A/B test {test_id}: {ab.split:.1%} of units to challenger {version}",
                        run_id=run_id, at=at)
    return store.ab_test(test_id)


def running_ab_test(cfg: RetrainerConfig, store: Store) -> Any:
    test = store.active_ab_test(cfg.model.name)
    if test is None:
        raise RolloutError(f"no A/B test is running for {cfg.model.name!r}: start one with `retrainer ab start`")
    return test


@dataclass(frozen=True)
class ABStop:
    status: Literal["aborted", "promoted", "superseded"]
    ab_test_id: int
    analysis: Any  # retrainer.deployments.rollout.analysis.ABAnalysis

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "ab_test_id": self.ab_test_id, "analysis": self.analysis.to_dict()}


def stop_ab(
    cfg: RetrainerConfig, store: Store, registry: Registry, *, promote: bool, actor: str, force: bool = False,
    reason: str | None = None, at: datetime | None = None,
) -> ABStop:
    """Stop the running test: promote the challenger (compare-and-set, refused while the sample
    ratio mismatches or, unless ``force``, while the verdict is not promote_challenger) or abort."""
    from retrainer.deployments.rollout.analysis import analyze
    from retrainer.deployments.rollout.promotion import promote as promote_version

    test = running_ab_test(cfg, store)
    analysis = analyze(store, test, gate=cfg.gate, decision=cfg.rollout.decision, as_of=at)
    if not promote:
        why = reason or f"aborted (verdict was {analysis.verdict})"
        _close(store, test, why, analysis.verdict, "abort", actor, at)
        return ABStop("aborted", test.id, analysis)
    if analysis.decision.srm_mismatch:
        raise RolloutError(f"refusing to promote: {analysis.decision.reason}")
    if analysis.verdict != "promote_challenger" and not force:
        raise RolloutError(f"the verdict is {analysis.verdict} ({analysis.decision.reason}); "
                           "pass --force to promote anyway, or --abort")
    forced = " (forced)" if analysis.verdict != "promote_challenger" else ""
    why = reason or f"A/B test {test.id}: {analysis.decision.reason}{forced}"
    outcome = promote_version(registry, store, version=test.challenger_version,
                              expected_champion=test.champion_version, actor=actor, reason=why, at=at)
    _close(store, test, f"{outcome.status}: {why}", analysis.verdict, outcome.status, actor, at)
    return ABStop("promoted" if outcome.status == "promoted" else "superseded", test.id, analysis)


def _close(store: Store, test: Any, why: str, verdict: str, action: str, actor: str, at: datetime | None) -> None:
    store.stop_ab_test(test.id, reason=why, result={"verdict": verdict, "action": action}, stopped_at=at)
    store.append_ledger(test.model_name, action="ab_stop", from_version=test.champion_version,
                        to_version=test.challenger_version, actor=actor, reason=why, at=at)


__all__ = [
    "ABStop",
    "SHADOW_ACTIONS",
    "ShadowState",
    "champion_version",
    "running_ab_test",
    "shadow_state",
    "guard_shadow_rollout",
    "shadow_target",
    "start_ab",
    "start_guard_shadow",
    "start_shadow",
    "stop_ab",
    "stop_shadow",
]
