"""The policies a simulation compares, named by short specs.

=====================  ===========================================================================
``configured``         the triggers and ``policy:`` of retrainer.yaml, built by the real registry
``never``              the null trigger: the initial model serves every step
``always``             retrain at every step
``periodic:30d``       the ``schedule`` trigger with that interval
``oracle``             the cheapest schedule in hindsight (:mod:`retrainer.simulate.oracle`)
``TYPE[:k=v;k=v]``     one trigger of any installed type, params as ``key=value`` (YAML values),
                       e.g. ``performance:window=90d;min_labels=30;thresholds={f1: 0.5}``
``@file.yaml``         ``triggers:`` (and optional ``policy:``) read from a file
=====================  ===========================================================================

Every spec but ``configured`` runs without cooldown or hysteresis (``policy: {cooldown: 0s}``)
unless its file says otherwise. A ``cost_benefit`` trigger built from a spec takes the
simulation's ``retrain_cost`` and ``error_cost`` unless its params give them.

>>> split_specs("never,periodic:30d,performance:thresholds={f1: 0.5, accuracy: 0.8}")
['never', 'periodic:30d', 'performance:thresholds={f1: 0.5, accuracy: 0.8}']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from retrainer.config import PolicyConfig, RetrainerConfig
from retrainer.durations import parse_duration
from retrainer.errors import ConfigError
from retrainer.triggers.base import Trigger
from retrainer.triggers.context import TriggerContext
from retrainer.triggers.decision import Decision
from retrainer.triggers.policy import Policy, build_policy

ORACLE = "oracle"
_UNGUARDED = PolicyConfig(cooldown=timedelta(0))


class AlwaysTrigger(Trigger):
    """Fires at every evaluation: the ``always`` baseline (not an installed plugin)."""

    name = "always"

    def evaluate(self, ctx: TriggerContext) -> Decision:
        return Decision.fire(self.label, reason="The always baseline fires at every step.")


@dataclass(frozen=True)
class ComparedPolicy:
    """A named policy to replay; ``policy`` is None for the oracle (it is solved, not replayed)."""

    name: str
    policy: Policy | None

    @property
    def is_oracle(self) -> bool:
        return self.policy is None


def split_specs(text: str) -> list[str]:
    """Split a ``--compare`` list on the commas that are not inside ``{}`` or ``[]``."""
    out: list[str] = []
    depth, current = 0, ""
    for ch in text:
        depth += ch in "{["
        depth -= ch in "}]"
        if ch == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += ch
    out.append(current)
    names = [s.strip() for s in out if s.strip()]
    if not names:
        raise ConfigError(f"no policy in {text!r}: give e.g. never,periodic:30d,oracle")
    return names


def _params(text: str, spec: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"policy {spec!r}: {part!r} is not key=value (separate params with ';')")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"policy {spec!r}: the value of {key.strip()!r} is not valid YAML: {value!r}") from None
    return params


def _with_costs(trigger: Mapping[str, Any], costs: Mapping[str, float]) -> dict[str, Any]:
    spec = dict(trigger)
    if spec.get("type") == "cost_benefit":
        params = dict(spec.get("params") or {})
        inline = {k for k in spec if k not in ("type", "name", "params")}
        for key, value in costs.items():
            if key not in params and key not in inline:
                params[key] = value
        spec["params"] = params
    return spec


def _from_file(path: str, costs: Mapping[str, float]) -> Policy:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"policy file {path!r} cannot be read: {exc.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"policy file {path!r} is not valid YAML") from None
    if not isinstance(data, Mapping) or not isinstance(data.get("triggers"), list):
        raise ConfigError(f"policy file {path!r} must hold a `triggers:` list (and optionally `policy:`)")
    try:
        policy = PolicyConfig.model_validate(data.get("policy") or {"cooldown": "0s"})
    except ValueError as exc:
        raise ConfigError(f"policy file {path!r}: `policy:` is invalid: {exc}") from None
    return build_policy([_with_costs(t, costs) for t in data["triggers"]], policy)


def build_compared_policy(spec: str, cfg: RetrainerConfig, *, retrain_cost: float, error_cost: float) -> ComparedPolicy:
    """The policy a spec names (see the module docstring)."""
    costs = {"retrain_cost": retrain_cost, "error_cost": error_cost}
    name = spec.strip()
    if name == ORACLE:
        return ComparedPolicy(name, None)
    if name == "configured":
        if not cfg.triggers:
            raise ConfigError("the configuration has no triggers: `configured` would never fire; add triggers or drop it")
        return ComparedPolicy(name, build_policy(cfg))
    if name == "never":
        return ComparedPolicy(name, build_policy([{"type": "never"}], _UNGUARDED))
    if name == "always":
        return ComparedPolicy(name, build_policy([AlwaysTrigger()], _UNGUARDED))
    if name.startswith("@"):
        return ComparedPolicy(name, _from_file(name[1:], costs))
    kind, _, rest = name.partition(":")
    if kind == "periodic":
        try:
            interval = parse_duration(rest)
        except ValueError as exc:
            raise ConfigError(f"policy {name!r}: {exc}") from None
        if interval <= timedelta(0):
            raise ConfigError(f"policy {name!r}: the period must be positive")
        return ComparedPolicy(name, build_policy([{"type": "schedule", "interval": interval}], _UNGUARDED))
    trigger = _with_costs({"type": kind, "params": _params(rest, name)}, costs)
    return ComparedPolicy(name, build_policy([trigger], _UNGUARDED))


__all__ = ["ORACLE", "AlwaysTrigger", "ComparedPolicy", "build_compared_policy", "split_specs"]
