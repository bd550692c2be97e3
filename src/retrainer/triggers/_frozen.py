"""Moved to the base module :mod:`retrainer.frozen` (the registry's ChampionInfo uses it too)."""

from retrainer.frozen import FrozenDict, deep_freeze, readonly_array, thaw

__all__ = ["FrozenDict", "deep_freeze", "readonly_array", "thaw"]
