"""fleet.yaml: many models in one file: a template, the models (listed or found in the store).

A fleet is one store and one registry holding every model; each model's configuration is the
``template`` (a retrainer.yaml body; ``model.name`` comes from the list) with that model's
``overrides`` deep-merged on top: mappings merge key by key, anything else (a list of triggers, a
number) replaces the template's value. With ``fleet.discover: true`` every model the store knows a
champion of joins too, on the bare template. Per-model retrainer.yaml files keep working.

    fleet:
      name: stores
      batch_size: 200          # models per Prefect task
      fdr: 0.05                # Benjamini-Hochberg rate over the models' p-values each cycle
      control: bh              # or none: every model's own verdict stands
      discover: false
    template:
      store: {url: sqlite:///retrainer.db}
      data: {...}
      triggers: [{type: drift, statistic: pvalue, window: 1d}]
    models:
      - name: store-001
      - name: store-002
        overrides: {triggers: [{type: drift, statistic: pvalue, window: 7d}]}

>>> cfg = parse_fleet_config({"template": {"data": {"features": [{"name": "x"}]}},
...     "models": [{"name": "a"}, {"name": "b", "overrides": {"policy": {"cooldown": "2d"}}}]})
>>> [(m.model.name, m.policy.cooldown.days) for m in fleet_model_configs(cfg)]
[('a', 1), ('b', 2)]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from retrainer.config import ModelConfig, RetrainerConfig, format_validation_error, parse_config
from retrainer.errors import ConfigError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FleetSettings(_Model):
    """How the fleet is checked."""

    name: str = Field("fleet", description="Shown in summaries and artifact keys.")
    batch_size: int = Field(200, ge=1, le=10_000, description="Models checked by one Prefect task.")
    fdr: float = Field(0.05, gt=0, lt=1, description="False-retrain rate controlled across the fleet each cycle.")
    control: Literal["bh", "none"] = Field("bh", description="bh: Benjamini-Hochberg over the models' p-values.")
    discover: bool = Field(False, description="Also check every model the store has a champion for.")


class FleetModel(_Model):
    """One model of the fleet."""

    name: str = Field(description="Registered model name (model.name of its configuration).")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Deep-merged over the template.")


class FleetConfig(_Model):
    """The whole of fleet.yaml."""

    fleet: FleetSettings = Field(default_factory=FleetSettings)
    template: dict[str, Any] = Field(description="A retrainer.yaml body without model.name.")
    models: list[FleetModel] = Field(default_factory=list)
    base_dir: Path | None = Field(None, exclude=True)


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: mappings merge key by key, other values replace."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_fleet_config(data: Mapping[str, Any], *, base_dir: Path | str | None = None, source: str = "fleet configuration",
                       environ: Mapping[str, str] | None = None) -> FleetConfig:
    """Validate fleet.yaml: its own keys, the template (as model ``<template>``), every override."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source} must be a mapping (fleet:, template:, models:), not {type(data).__name__}")
    try:
        cfg = FleetConfig.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, FleetConfig)) from None
    names = [m.name for m in cfg.models]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"{source}: models listed twice: {', '.join(twice)}; list each model once")
    if not cfg.models and not cfg.fleet.discover:
        raise ConfigError(f"{source}: no models: list them under `models:` or set `fleet.discover: true`")
    base = Path(base_dir).resolve() if base_dir is not None else Path.cwd()
    cfg = cfg.model_copy(update={"base_dir": base})
    _template_config(cfg, "fleet-template", environ)  # the template must be a valid configuration by itself
    for m in cfg.models:
        if m.overrides:
            _model_config(cfg, m, environ)
    return cfg


def _body(cfg: FleetConfig, name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    body = deep_merge(cfg.template, overrides)
    body["model"] = {**dict(body.get("model") or {}), "name": name}
    return body


def _template_config(cfg: FleetConfig, name: str, environ: Mapping[str, str] | None = None) -> RetrainerConfig:
    return parse_config(_body(cfg, name, {}), base_dir=cfg.base_dir, environ=environ, source=f"{name} (fleet template)")


def _model_config(cfg: FleetConfig, m: FleetModel, environ: Mapping[str, str] | None = None) -> RetrainerConfig:
    return parse_config(_body(cfg, m.name, m.overrides), base_dir=cfg.base_dir, environ=environ,
                        source=f"model {m.name!r} of the fleet (template + overrides)")


def load_fleet_config(path: Path | str, *, environ: Mapping[str, str] | None = None) -> FleetConfig:
    """Read and validate a fleet.yaml file."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"fleet file {str(p)!r} does not exist: pass --fleet with the path to fleet.yaml") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p} is not valid YAML: {exc}") from None
    return parse_fleet_config(data, base_dir=p.parent, source=str(p), environ=environ)


def fleet_model_configs(cfg: FleetConfig, discovered: Iterable[str] = (), *,
                        environ: Mapping[str, str] | None = None) -> list[RetrainerConfig]:
    """Every model's configuration: the listed ones, then ``discovered`` names not listed (bare
    template). Models without overrides share the validated template (only the name differs):
    validating 10,000 identical bodies would cost seconds per cycle."""
    template = _template_config(cfg, "fleet-template", environ)
    out = []
    listed = set()
    for m in cfg.models:
        listed.add(m.name)
        out.append(_model_config(cfg, m, environ) if m.overrides else _named(template, m.name))
    if cfg.fleet.discover:
        out.extend(_named(template, name) for name in sorted(set(discovered) - listed))
    return out


def _named(template: RetrainerConfig, name: str) -> RetrainerConfig:
    try:
        model = ModelConfig(name=name)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, f"model name {name!r} found in the store", ModelConfig)) from None
    return template.model_copy(update={"model": model})


#: ``fleet.yaml#store-001`` names one model of a fleet wherever a retrainer.yaml path is expected
#: (the retrain request events of the fleet flow carry it; the retrain and rollout flows load it).
MEMBER_SEPARATOR = "#"


def member_ref(fleet_path: str, model: str) -> str:
    return f"{fleet_path}{MEMBER_SEPARATOR}{model}"


def load_model_config(ref: str | Path, *, environ: Mapping[str, str] | None = None) -> RetrainerConfig:
    """A retrainer.yaml path, or ``fleet.yaml#model``: that model's configuration in the fleet."""
    from retrainer.config import load_config

    text = str(ref)
    if MEMBER_SEPARATOR not in text:
        return load_config(text, environ=environ)
    path, model = text.rsplit(MEMBER_SEPARATOR, 1)
    cfg = load_fleet_config(path, environ=environ)
    listed = [m for m in cfg.models if m.name == model]
    if listed:
        return _model_config(cfg, listed[0], environ)
    if cfg.fleet.discover:
        return _named(_template_config(cfg, "fleet-template", environ), model)
    raise ConfigError(f"{path} has no model {model!r} and does not discover models; list it under `models:`")


def policy_key(cfg: RetrainerConfig) -> str:
    """Models whose triggers and policy are the same share one built policy (this is the key)."""
    return json.dumps([[t.model_dump(mode="json") for t in cfg.triggers], cfg.policy.model_dump(mode="json")],
                      sort_keys=True, default=str)


__all__ = ["MEMBER_SEPARATOR", "FleetConfig", "FleetModel", "FleetSettings", "deep_merge", "fleet_model_configs",
           "load_fleet_config", "load_model_config", "member_ref", "parse_fleet_config", "policy_key"]
