"""fleet.yaml: a template, models listed with overrides or found in the store."""

from __future__ import annotations

import pytest

from retrainer.errors import ConfigError
from retrainer.fleet_config import deep_merge, fleet_model_configs, load_fleet_config, parse_fleet_config
from retrainer.flows.fleet import fleet_models

from .conftest import SPECS, write_fleet

TEMPLATE = {"data": {"features": [s.model_dump() for s in SPECS]},
            "triggers": [{"type": "drift", "window": "1d"}], "policy": {"cooldown": "1d"}}


def test_listed_models_get_the_template_with_their_overrides_merged() -> None:
    cfg = parse_fleet_config({"template": TEMPLATE, "models": [
        {"name": "a"},
        {"name": "b", "overrides": {"policy": {"cooldown": "3d"}, "triggers": [{"type": "drift", "window": "7d"}]}},
    ]})
    a, b = fleet_model_configs(cfg)
    assert (a.model.name, b.model.name) == ("a", "b")
    assert a.policy.cooldown.days == 1 and b.policy.cooldown.days == 3  # mapping merged key by key
    assert a.triggers[0].params["window"] == "1d" and b.triggers[0].params["window"] == "7d"  # list replaced
    assert a.data == b.data  # untouched keys from the template
    assert deep_merge({"x": {"y": 1, "z": 2}}, {"x": {"z": 3}}) == {"x": {"y": 1, "z": 3}}


def test_every_problem_names_the_model_or_the_template() -> None:
    with pytest.raises(ConfigError, match="(?s)model .b. of the fleet.*policy.cooldwn"):
        parse_fleet_config({"template": TEMPLATE, "models": [{"name": "b", "overrides": {"policy": {"cooldwn": "1d"}}}]})
    with pytest.raises(ConfigError, match="fleet template"):
        parse_fleet_config({"template": {**TEMPLATE, "triggers": "drift"}, "models": [{"name": "a"}]})
    with pytest.raises(ConfigError, match="listed twice: a"):
        parse_fleet_config({"template": TEMPLATE, "models": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ConfigError, match="no models"):
        parse_fleet_config({"template": TEMPLATE})
    with pytest.raises(ConfigError, match="batch_size"):
        parse_fleet_config({"template": TEMPLATE, "fleet": {"batch_size": 0}, "models": [{"name": "a"}]})


def test_discovery_adds_the_stores_champions_to_the_listed_models(fleet_store, tmp_path) -> None:
    url, store = fleet_store
    path = write_fleet(tmp_path / "fleet.yaml", url, [{"name": "c", "overrides": {"policy": {"cooldown": "2d"}}}],
                       discover=True)
    assert fleet_models(str(path)) == ["c", "a", "b"]  # listed first, then discovered
    configs = {c.model.name: c for c in fleet_model_configs(load_fleet_config(path), store.champions())}
    assert sorted(configs) == ["a", "b", "c"] and configs["c"].policy.cooldown.days == 2
    listed_only = write_fleet(tmp_path / "listed.yaml", url, [{"name": "a"}])
    assert fleet_models(str(listed_only)) == ["a"]


def test_a_fleet_member_is_addressed_as_fleet_yaml_hash_model(fleet_store, tmp_path) -> None:
    from retrainer.fleet_config import load_model_config, member_ref

    url, _ = fleet_store
    path = write_fleet(tmp_path / "fleet.yaml", url, [{"name": "a", "overrides": {"policy": {"cooldown": "5d"}}}],
                       discover=True)
    a = load_model_config(member_ref(str(path), "a"))
    assert a.model.name == "a" and a.policy.cooldown.days == 5
    assert load_model_config(f"{path}#b").model.name == "b"  # discovered: the bare template
    closed = write_fleet(tmp_path / "closed.yaml", url, [{"name": "a"}])
    with pytest.raises(ConfigError, match="no model 'zz'"):
        load_model_config(f"{closed}#zz")
