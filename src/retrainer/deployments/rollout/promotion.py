"""Promotion, rollback and rejection: compare-and-set on the champion, one ledger row each.

The SQL store's champion pointer is the source of truth; MLflow's ``champion`` alias mirrors
it. A promotion first compare-and-sets the store's pointer against the champion the caller
saw (``expected_champion``). Losing that race is never silent: the loser writes a
``superseded`` ledger row and gets ``status="superseded"`` back. The winner's CAS and its
``promote`` row are one transaction (``Store.swap_champion``), so the ledger never lacks a move
the store has made; then the alias moves. If moving the alias fails, the store is ahead of MLflow; every
entry point here first calls :func:`sync_champion_alias`, which repairs that.

Rollback is one step: the ledger is replayed as a stack (promote pushes, rollback pops) and
the champion goes back to the version below the current one, again by compare-and-set.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from retrainer.champion_info import ChampionInfo
from retrainer.errors import RegistryError
from retrainer.registry_alias import CHALLENGER, CHAMPION, known_alias_version

if TYPE_CHECKING:  # importing MLflow costs ~1.25 s: a caller that has a Registry has paid it already
    from retrainer.config import RetrainerConfig
    from retrainer.registry import Registry

_log = logging.getLogger(__name__)


class LedgerRow(Protocol):
    id: int
    run_id: Any
    action: str
    from_version: str | None
    to_version: str | None


class PromotionStore(Protocol):
    """What promotion needs from the SQL store (:class:`retrainer.store.Store` provides it)."""

    def champion(self, model_name: str) -> str | None: ...

    def swap_champion(
        self,
        model_name: str,
        *,
        expected: str | None,
        new: str,
        action: str,
        actor: str,
        reason: str,
        run_id: Any = None,
        at: Any = None,
    ) -> int | None: ...

    def append_ledger(
        self,
        model_name: str,
        *,
        action: str,
        from_version: str | None,
        to_version: str | None,
        actor: str,
        reason: str,
        run_id: Any = None,
        at: Any = None,
    ) -> int: ...

    def ledger(self, model_name: str) -> Sequence[LedgerRow]: ...


@dataclass(frozen=True)
class PromotionResult:
    status: Literal["promoted", "superseded", "rolled_back"]
    from_version: str | None  # the champion this call expected (promote) or left (rollback)
    to_version: str
    champion: str | None  # the champion after the call, whoever set it
    ledger_id: int


def sync_champion_alias(registry: Registry, store: PromotionStore) -> str | None:
    """Make MLflow's ``champion`` alias equal the store's champion; return that champion.

    A store without a champion leaves the alias alone (it may predate retrainer).
    """
    truth = store.champion(registry.model_name)
    if truth is not None and registry.alias_version(CHAMPION) != truth:
        registry.set_alias(CHAMPION, truth)
    return truth



def resolve_champion(registry: Registry, store: PromotionStore) -> str | None:
    """Who is the champion: the store's pointer (the truth promotion compare-and-sets); MLflow's
    alias only when the store has none yet. An alias that disagrees is logged and repaired."""
    alias = registry.alias_version(CHAMPION)
    truth = store.champion(registry.model_name)
    if truth is None:
        return alias
    if alias != truth:
        _log.warning("champion alias of %s points at %s but the store says %s: repairing the alias",
                     registry.model_name, alias, truth)
        try:
            registry.set_alias(CHAMPION, truth)
        except RegistryError as exc:  # the answer stands (the store is the truth); the next call retries
            _log.warning("could not repair the champion alias of %s: %s", registry.model_name, exc)
    return truth


def resolved_champion_info(registry: Registry, store: PromotionStore) -> ChampionInfo | None:
    """:func:`resolve_champion`'s answer as the triggers' :class:`ChampionInfo` (version only:
    ``run_check`` dates it from its reference profile, as the store path does)."""
    version = resolve_champion(registry, store)
    return None if version is None else ChampionInfo(version)


def champion_info_for(cfg: RetrainerConfig, store: PromotionStore) -> ChampionInfo | None:
    """:func:`resolved_champion_info` for a caller that has no :class:`Registry` yet (``check``).

    When the store names a champion and MLflow's alias, read straight from MLflow's SQL store,
    already agrees, that is the answer and MLflow is never imported. Otherwise (no pointer, an
    alias that lags or cannot be read that way) MLflow answers and repairs, as everywhere else.
    """
    truth = store.champion(cfg.model.name)
    registry_uri = cfg.mlflow.registry_uri or cfg.mlflow.tracking_uri
    if truth is not None and known_alias_version(registry_uri, cfg.model.name, CHAMPION) == truth:
        return ChampionInfo(truth)
    from retrainer.registry import Registry

    return resolved_champion_info(Registry.from_config(cfg), store)


def promote(
    registry: Registry,
    store: PromotionStore,
    *,
    version: str,
    expected_champion: str | None,
    actor: str,
    reason: str,
    run_id: Any = None,
    at: datetime | None = None,
) -> PromotionResult:
    """Make ``version`` the champion if the champion is still ``expected_champion``."""
    model = registry.model_name
    # Must exist and be loadable safely (skops, allow-listed types) before anything moves.
    version = registry.check_loadable(str(registry.get_version(version).version))
    sync_champion_alias(registry, store)
    ledger_id = store.swap_champion(
        model, expected=expected_champion, new=version, action="promote",
        actor=actor, reason=reason, run_id=run_id, at=at,
    )
    if ledger_id is None:
        earlier = _earlier_promotion(store, model, version, run_id)
        if earlier is None:
            return _superseded(registry, store, expected_champion, version, actor, run_id, at,
                               f"not promoted: champion is {{actual!r}}, expected {expected_champion!r} ({reason})")
        # A retry of a promotion that already went through (e.g. the alias move failed after
        # the swap): finish the job instead of calling our own earlier success a lost race.
        ledger_id = earlier
    _mirror(registry, version)
    if registry.alias_version(CHALLENGER) == version:
        registry.delete_alias(CHALLENGER)  # it is no longer a challenger
    return PromotionResult("promoted", expected_champion, version, version, ledger_id)


def _earlier_promotion(store: PromotionStore, model: str, version: str, run_id: Any) -> int | None:
    """The ledger id of this run's own promotion of ``version``, if it is the current champion."""
    if run_id is None or store.champion(model) != version:
        return None
    for row in reversed(store.ledger(model)):
        if row.action in ("promote", "rollback"):
            same = row.action == "promote" and row.to_version == version and row.run_id == run_id
            return int(row.id) if same else None
    return None


def _superseded(
    registry: Registry, store: PromotionStore, expected: str | None, target: str, actor: str,
    run_id: Any, at: datetime | None, reason_template: str,
) -> PromotionResult:
    """The compare-and-set lost: record it, leave the winner alone, repair the alias to the truth."""
    model = registry.model_name
    actual = store.champion(model)
    ledger_id = store.append_ledger(
        model, action="superseded", from_version=expected, to_version=target, actor=actor,
        reason=reason_template.format(actual=actual), run_id=run_id, at=at,
    )
    sync_champion_alias(registry, store)
    return PromotionResult("superseded", expected, target, actual, ledger_id)


def champion_history(rows: Sequence[LedgerRow]) -> list[str]:
    """The stack of champions the ledger describes, oldest first (promote pushes, rollback pops)."""
    stack: list[str] = []
    for row in rows:
        if row.action == "promote" and row.to_version is not None:
            stack.append(row.to_version)
        elif row.action == "rollback" and stack:
            stack.pop()
            if row.to_version is not None and (not stack or stack[-1] != row.to_version):
                stack.append(row.to_version)  # a rollback to a version not below: keep the ledger's word
    return stack


def rollback(
    registry: Registry,
    store: PromotionStore,
    *,
    actor: str,
    reason: str,
    run_id: Any = None,
    at: datetime | None = None,
    expected_champion: str | None = None,
) -> PromotionResult:
    """Put the previous champion back, in one step (compare-and-set against the current one).

    ``expected_champion`` is the champion the caller saw (e.g. the one an operator's alert was
    about): if another rollback or promotion moved it meanwhile, this one is ``superseded`` and
    changes nothing, so two rollbacks sent for the same incident move one step, not two.
    Without it, the champion read now is the expectation (still one compare-and-set).
    """
    model = registry.model_name
    current = sync_champion_alias(registry, store)
    if current is None:
        raise RegistryError(f"{model!r} has no champion: there is nothing to roll back")
    if expected_champion is not None and str(expected_champion) != current:
        # What it would have restored: the champion before ``expected`` was last promoted.
        below = [r.from_version for r in store.ledger(model) if r.action == "promote" and r.to_version == str(expected_champion)]
        target = below[-1] if below and below[-1] is not None else str(expected_champion)
        return _superseded(registry, store, str(expected_champion), target, actor, run_id, at,
                           f"rollback not applied: champion is {{actual!r}}, expected {expected_champion!r} ({reason})")
    history = champion_history(store.ledger(model))
    if len(history) < 2 or history[-1] != current:
        raise RegistryError(
            f"the ledger of {model!r} names no champion before {current!r}: nothing to roll back to "
            "(promote a known-good version instead)"
        )
    target = history[-2]
    registry.check_loadable(str(registry.get_version(target).version))  # still registered, still safe?
    ledger_id = store.swap_champion(
        model, expected=current, new=target, action="rollback", actor=actor, reason=reason, run_id=run_id, at=at
    )
    if ledger_id is None:
        return _superseded(registry, store, current, target, actor, run_id, at,
                           f"rollback not applied: champion moved to {{actual!r}} meanwhile ({reason})")
    _mirror(registry, target)
    return PromotionResult("rolled_back", current, target, target, ledger_id)


def reject(
    registry: Registry,
    store: PromotionStore,
    *,
    version: str | None,
    actor: str,
    reason: str,
    run_id: Any = None,
    at: datetime | None = None,
) -> int:
    """Record that a candidate will not be promoted; unstage it if it is the challenger.

    ``version`` is None when the gate rejected a candidate before it was ever registered.
    """
    model = registry.model_name
    sync_champion_alias(registry, store)
    ledger_id = store.append_ledger(
        model,
        action="reject",
        from_version=store.champion(model),
        to_version=None if version is None else str(version),
        actor=actor,
        reason=reason,
        run_id=run_id,
        at=at,
    )
    if version is not None and registry.alias_version(CHALLENGER) == str(version):
        registry.delete_alias(CHALLENGER)
    return ledger_id


def _mirror(registry: Registry, version: str) -> None:
    try:
        registry.set_alias(CHAMPION, version)
    except RegistryError as exc:
        raise RegistryError(
            f"champion of {registry.model_name!r} is now {version} in the store, but the MLflow alias "
            f"could not be moved ({exc}); it is repaired on the next promote/rollback, or run "
            "sync_champion_alias"
        ) from exc


__all__ = [
    "PromotionResult",
    "PromotionStore",
    "champion_history",
    "champion_info_for",
    "promote",
    "reject",
    "resolve_champion",
    "resolved_champion_info",
    "rollback",
    "sync_champion_alias",
]
