"""retrainer.yaml validation: the example loads, errors name the field path and the choices."""

from __future__ import annotations

from datetime import timedelta

import pytest
import yaml

from retrainer.config import ENV_OVERRIDES, example_config_path, load_config, parse_config
from retrainer.durations import format_duration, parse_duration
from retrainer.errors import ConfigError, RetrainerError

MINIMAL = {"model": {"name": "m"}, "data": {"source": {"table": "t"}, "features": [{"name": "x"}]}}


def _with(**changes):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    for dotted, value in changes.items():
        node = data
        *parents, leaf = dotted.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


def test_example_config_loads_with_its_documented_values(tmp_path):
    cfg = load_config(example_config_path(), environ={})
    assert cfg.model.name == "credit-default"
    assert [t.type for t in cfg.triggers] == ["schedule", "performance", "drift", "data_volume", "model_age"]
    assert cfg.triggers[4].params == {"max_age": "30d"}
    assert cfg.triggers[1].params["thresholds"] == {"accuracy": 0.85, "f1": 0.70}
    assert cfg.gate.metric == "f1" and cfg.gate.min_ratio == 0.95
    assert cfg.policy.cooldown == timedelta(days=1)
    assert cfg.data.window == timedelta(days=180)
    assert cfg.data.feature_names[-1] == "product"
    # relative sqlite paths are resolved next to the config file, not the working directory
    assert cfg.store.url == "sqlite:///" + str(example_config_path().parent.resolve() / "retrainer.db")


def test_defaults_are_the_seed_values(tmp_path):
    cfg = parse_config(MINIMAL, base_dir=tmp_path, environ={})
    assert cfg.policy.mode == "any"
    assert cfg.rollout.mode == "auto" and cfg.rollout.resolved_mode == "shadow"
    assert cfg.serving.host == "127.0.0.1"
    assert cfg.mlflow.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert cfg.store.url == f"sqlite:///{tmp_path.resolve()}/retrainer.db"
    assert cfg.mlflow.artifact_location == str(tmp_path.resolve() / "mlartifacts")
    relative = parse_config({**MINIMAL, "mlflow": {"artifact_location": "art"}}, base_dir=tmp_path, environ={})
    assert relative.mlflow.artifact_location == str(tmp_path.resolve() / "art")
    remote = parse_config({**MINIMAL, "mlflow": {"artifact_location": "s3://b/p"}}, base_dir=tmp_path, environ={})
    assert remote.mlflow.artifact_location == "s3://b/p"


@pytest.mark.parametrize(
    ("changes", "path", "hint"),
    [
        ({"rollout": {"mode": "canary"}}, "rollout.mode", "'auto', 'direct', 'shadow' or 'ab'"),
        ({"rollout": {"decision": {"margin": 0}}}, "rollout.decision.margin", "greater than 0"),
        ({"rollout": {"decision": {"p_harm_reject": 0.4}}}, "rollout.decision.p_harm_reject", "greater than 0.5"),
        ({"rollout": {"decision": {"max_duration": "two weeks"}}}, "rollout.decision.max_duration", "30d, 6h, 15m"),
        ({"rollout": {"decision": {"kapa": 0.5}}}, "rollout.decision.kapa", "did you mean 'kappa'"),
        ({"rollout": {"mode": "shadow", "outcomes_depend_on_predictions": True}}, "rollout",
         "use mode 'ab' or 'auto'"),
        ({"policy": {"mode": "most"}}, "policy.mode", "'any', 'all' or 'at_least'"),
        ({"gate": {"metric": "mse"}}, "gate.metric", "'f1'"),
        ({"policy": {"cooldown": "3 fortnights"}}, "policy.cooldown", "30d, 6h, 15m"),
        ({"data__features": [{"name": "x", "type": "text"}]}, "data.features[0].type", "'numeric' or 'categorical'"),
        ({"data__features": [{"name": "x; drop table t"}]}, "data.features[0].name", "not a plain SQL name"),
        ({"data__source": {"table": "a.b.c"}}, "data.source", "not a plain SQL name"),
        ({"data__source": {"table": "t", "query": "select 1"}}, "data.source", "exactly one of"),
        ({"data__source": {"query": "delete from t"}}, "data.source", "must be a SELECT"),
        ({"data__label_column": "x"}, "data", "cannot also be a feature"),
        ({"serving": {"port": 70000}}, "serving.port", "less than or equal to 65535"),
        ({"modle": {"name": "typo"}}, "modle", "unknown key"),
        ({"policy": {"mode": "at_least"}}, "policy", "needs `k`"),
        ({"triggers": [{"type": "drift"}, {"type": "drift"}]}, "(top level)", "give one of them a `name`"),
        ({"estimator": {"class": "not an import path"}}, "estimator.class", "import path"),
    ],
)
def test_errors_name_the_field_and_the_allowed_values(changes, path, hint, tmp_path):
    data = _with(**changes) if any("__" in k for k in changes) else {**MINIMAL, **changes}
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=tmp_path, environ={}, source="retrainer.yaml")
    text = str(info.value)
    assert text.startswith("retrainer.yaml is invalid")
    assert f"- {path}" in text, text
    assert hint in text, text
    assert isinstance(info.value, RetrainerError)


def test_all_problems_are_reported_at_once(tmp_path):
    bad = {**MINIMAL, "rollout": {"mode": "x"}, "gate": {"min_ratio": -1}}
    with pytest.raises(ConfigError) as info:
        parse_config(bad, base_dir=tmp_path, environ={})
    assert "2 problems" in str(info.value)


def test_inline_trigger_params_are_shorthand_for_params(tmp_path):
    data = {**MINIMAL, "triggers": [{"type": "drift", "psi_threshold": 0.3, "params": {"bins": 20}}]}
    cfg = parse_config(data, base_dir=tmp_path, environ={})
    assert cfg.triggers[0].params == {"psi_threshold": 0.3, "bins": 20}
    clash = {**MINIMAL, "triggers": [{"type": "drift", "bins": 5, "params": {"bins": 20}}]}
    with pytest.raises(ConfigError, match="params given twice"):
        parse_config(clash, base_dir=tmp_path, environ={})


def test_environment_overrides_urls_and_secrets(tmp_path):
    env = {
        "RETRAINER_STORE_URL": "postgresql+psycopg://u:p@127.0.0.1/db",
        "RETRAINER_API_TOKEN": "s3cret",
        "RETRAINER_MLFLOW_TRACKING_URI": "sqlite:///other.db",
    }
    cfg = parse_config(MINIMAL, base_dir=tmp_path, environ=env)
    assert cfg.store.url == env["RETRAINER_STORE_URL"]
    assert cfg.serving.api_token == "s3cret"
    assert cfg.mlflow.tracking_uri == f"sqlite:///{tmp_path.resolve()}/other.db"
    assert set(ENV_OVERRIDES) >= set(env)


def test_file_errors_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("model:\n  name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(broken)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(empty)


@pytest.mark.parametrize(
    ("text", "seconds"), [("30d", 30 * 86400), ("6h", 21600), ("15m", 900), ("45s", 45), ("2w", 14 * 86400), (90, 90)]
)
def test_durations_parse_and_round_trip(text, seconds):
    value = parse_duration(text)
    assert value == timedelta(seconds=seconds)
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("bad", ["", "5", "5y", "-3d", "d", True, None, [1]])
def test_bad_durations_are_rejected(bad):
    with pytest.raises(ValueError, match="duration|negative"):
        parse_duration(bad)


def test_rollout_mode_auto_resolves_from_whether_outcomes_depend_on_predictions(tmp_path):
    auto = parse_config(MINIMAL, base_dir=tmp_path, environ={}).rollout
    assert (auto.resolved_mode, "paired shadow" in auto.mode_reason) == ("shadow", True)
    ab = parse_config({**MINIMAL, "rollout": {"outcomes_depend_on_predictions": True}}, base_dir=tmp_path,
                      environ={}).rollout
    assert (ab.resolved_mode, "A/B" in ab.mode_reason) == ("ab", True)
    for mode in ("direct", "shadow", "ab"):
        fixed = parse_config({**MINIMAL, "rollout": {"mode": mode}}, base_dir=tmp_path, environ={}).rollout
        assert fixed.resolved_mode == mode and fixed.mode_reason == f"rollout.mode is {mode!r}"


def test_decision_defaults_and_obsolete_keys_carry_over(tmp_path):
    d = parse_config(MINIMAL, base_dir=tmp_path, environ={}).rollout
    assert (d.decision.margin, d.decision.kappa, d.decision.tau) == (0.01, 0.5, 0.03)
    assert (d.decision.min_labelled, d.decision.max_expected_loss) == (500, 0.0002)  # the bench-tuned rule
    assert d.decision.max_duration == timedelta(days=42) and d.shadow.agreement_floor == 0.5
    # Old files: ab.duration meant "longest the test may run", min_agreement the agreement line.
    old = parse_config({**MINIMAL, "rollout": {"ab": {"duration": "8d"}, "shadow": {"min_agreement": 0.6}}},
                       base_dir=tmp_path, environ={}).rollout
    assert old.decision.max_duration == timedelta(days=8) and old.shadow.agreement_floor == 0.6
    # The new key wins where both are given.
    both = parse_config({**MINIMAL, "rollout": {"ab": {"duration": "8d"}, "decision": {"max_duration": "20d"},
                                                "shadow": {"min_agreement": 0.9, "agreement_floor": 0.3}}},
                        base_dir=tmp_path, environ={}).rollout
    assert both.decision.max_duration == timedelta(days=20) and both.shadow.agreement_floor == 0.3
