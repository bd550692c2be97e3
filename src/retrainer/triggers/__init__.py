"""Deciding when a model should be retrained.

The public API of the trigger framework, re-exported from private-ish modules so they can move:

* :class:`Trigger` (with :class:`NeverTrigger`, the null object) — the plugin contract;
* :class:`Decision` — what a trigger answers;
* :class:`TriggerContext`, :class:`ChampionInfo` — what a trigger may read, clamped at ``now``;
* :class:`AnyOf`, :class:`AllOf`, :class:`AtLeast`, :class:`Guard`, :class:`Policy`,
  :func:`build_policy`, :class:`CheckResult` — combining triggers without retrain storms;
* :func:`available_triggers`, :func:`build_triggers`, :func:`register` — the entry-point registry.

Plugin authors: see ``retrainer.testing.check_trigger`` to prove a plugin keeps the contract.
"""

from __future__ import annotations

from retrainer.triggers.base import InvalidTriggerParams, NeverTrigger, Trigger
from retrainer.triggers.context import ChampionInfo, FeatureWindow, LabelledWindow, TriggerContext, WindowSource
from retrainer.triggers.decision import Decision, EvidenceNotSerialisable, Status
from retrainer.triggers.policy import (
    AllOf,
    AnyOf,
    AtLeast,
    CheckResult,
    Combination,
    Guard,
    Policy,
    apply_guard,
    build_policy,
)
from retrainer.triggers.registry import (
    ENTRY_POINT_GROUP,
    TriggerInfo,
    available_triggers,
    build_triggers,
    register,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "AllOf",
    "AnyOf",
    "AtLeast",
    "ChampionInfo",
    "CheckResult",
    "Combination",
    "Decision",
    "EvidenceNotSerialisable",
    "FeatureWindow",
    "Guard",
    "InvalidTriggerParams",
    "LabelledWindow",
    "NeverTrigger",
    "Policy",
    "Status",
    "Trigger",
    "TriggerContext",
    "TriggerInfo",
    "WindowSource",
    "apply_guard",
    "available_triggers",
    "build_policy",
    "build_triggers",
    "register",
]
