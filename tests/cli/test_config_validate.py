"""``retrainer config validate`` checks what ``check`` would: triggers, policy, store URL; all at once."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from retrainer.cli import main
from retrainer.config import example_config_path, load_config
from retrainer.triggers.config_check import config_problems


def _write(tmp_path: Path, **changes) -> Path:
    cfg = yaml.safe_load(example_config_path().read_text())
    cfg.update(changes)
    path = tmp_path / "retrainer.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_the_example_config_has_no_problems(tmp_path):
    assert config_problems(load_config(_write(tmp_path))) == []


def test_unknown_trigger_type_is_reported_with_a_suggestion(tmp_path):
    problems = config_problems(load_config(_write(tmp_path, triggers=[{"type": "drfit"}])))
    assert len(problems) == 1
    assert problems[0].startswith("triggers[0]: unknown trigger type 'drfit'") and "Did you mean 'drift'?" in problems[0]


def test_misspelt_trigger_parameter_has_its_path_and_a_suggestion(tmp_path):
    path = _write(tmp_path, triggers=[{"type": "model_age"}, {"type": "drift", "psi_treshold": 0.2}])
    assert config_problems(load_config(path)) == ["triggers[1].psi_treshold: unknown key; did you mean 'psi_threshold'?"]


def test_store_url_form_is_checked(tmp_path):
    path = _write(tmp_path, store={"url": "mysql://u@h/x"})
    problems = config_problems(load_config(path))
    assert problems == ["store.url: store url uses 'mysql'; supported: sqlite (default) and postgresql"]


def test_validate_reports_every_problem_at_once_in_one_line(tmp_path, capfd):
    path = _write(tmp_path, triggers=[{"type": "drfit"}, {"type": "drift", "psi_treshold": 0.2}],
                  store={"url": "mysql://u@h/x"})
    assert main(["config", "validate", str(path)]) == 2
    out, err = capfd.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert "(3 problems)" in lines[0]
    for part in ("triggers[0]: unknown trigger type 'drfit'", "triggers[1].psi_treshold", "'psi_threshold'", "store.url"):
        assert part in lines[0]
    assert "valid" not in out


def test_validate_json_lists_the_problems(tmp_path, capfd):
    path = _write(tmp_path, triggers=[{"type": "drfit"}])
    assert main(["config", "validate", str(path), "--json"]) == 2
    out = json.loads(capfd.readouterr().out)
    assert out["valid"] is False and len(out["problems"]) == 1


def test_a_misspelt_config_key_gets_a_suggestion(tmp_path, capfd):
    path = _write(tmp_path, gate={"metric": "f1", "min_ration": 0.9})
    assert main(["config", "validate", str(path)]) == 2
    assert "gate.min_ration: unknown key; did you mean 'min_ratio'?" in capfd.readouterr().err


def test_a_valid_config_still_says_valid(tmp_path, capfd):
    path = _write(tmp_path)
    assert main(["config", "validate", str(path), "--json"]) == 0
    assert json.loads(capfd.readouterr().out)["valid"] is True


def test_validate_without_an_argument_reads_retrainer_yaml_in_the_current_directory(tmp_path, capfd, monkeypatch):
    # The README writes `retrainer config validate` with no argument, as every command defaults to ./retrainer.yaml.
    _write(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["config", "validate"]) == 0
    assert "retrainer.yaml is valid" in capfd.readouterr().out


def test_validate_without_an_argument_and_no_file_says_which_file_is_missing(tmp_path, capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["config", "validate"]) == 2
    err = capfd.readouterr().err
    assert "retrainer.yaml" in err and "Missing argument" not in err and "Traceback" not in err
