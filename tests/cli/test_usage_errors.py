"""Every usage mistake and every missing/invalid store or table: one stderr line, exit 2, no
traceback, and no file left behind. Driven through the real entry point, ``retrainer.cli.main``."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from retrainer.cli import main
from retrainer.config import example_config_path

USAGE_MISTAKES = [
    ["promote"],                       # missing argument
    ["check", "--bogus"],              # unknown option
    ["nosuchcmd"],                     # unknown command
    ["ab", "start"],                   # required options missing
    ["config", "validate"],            # missing file argument
    ["shadow", "start"],
    ["retrain", "--force", "extra"],   # unexpected argument
    ["check", "--at"],                 # option without its value
    ["history", "--limit", "many"],    # wrong type
    ["config", "nosuchsub"],
]


def _one_line_exit_2(capfd, argv: list[str]) -> str:
    code = main(argv)
    out, err = capfd.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (argv, code, err)
    assert len(lines) == 1, (argv, err)
    assert "Traceback" not in err + out
    return lines[0]


@pytest.mark.parametrize("argv", USAGE_MISTAKES, ids=" ".join)
def test_a_usage_mistake_is_one_line_and_exit_2(capfd, argv):
    line = _one_line_exit_2(capfd, argv)
    assert line.startswith("error: ")


def test_usage_error_names_what_is_missing_and_where_to_look(capfd):
    assert "Missing argument 'version'" in _one_line_exit_2(capfd, ["promote"])
    assert "(see: retrainer ab start --help)" in _one_line_exit_2(capfd, ["ab", "start"])
    assert "No such command 'nosuchcmd'" in _one_line_exit_2(capfd, ["nosuchcmd"])


def test_the_console_script_itself_answers_in_one_line():
    script = Path(sys.executable).with_name("retrainer")
    done = subprocess.run([str(script), "check", "--bogus"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["error: No such option: --bogus (see: retrainer check --help)"]


def test_flags_do_not_render_as_taking_values(capfd):
    assert main(["retrain", "--help"]) == 0
    out = capfd.readouterr().out
    assert "--force <bool>" not in out and "--json <bool>" not in out and "<list[str]>" not in out
    assert "--reason <str>" in out


def _config(tmp_path: Path, store_url: str, *, source_url: str | None = None) -> Path:
    cfg = yaml.safe_load(example_config_path().read_text())
    cfg["store"]["url"] = store_url
    cfg["mlflow"] = {"tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    if source_url:
        cfg["data"]["source"]["url"] = source_url
    path = tmp_path / "retrainer.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


STORE_COMMANDS = [["check"], ["history"], ["serve"], ["retrain"], ["monitor"], ["rollback"], ["shadow", "report"]]


@pytest.mark.parametrize("argv", STORE_COMMANDS, ids=" ".join)
def test_a_missing_store_file_is_named_with_the_fix_and_not_created(tmp_path, capfd, argv):
    config = _config(tmp_path, "sqlite:///missing.db")
    before = _files(tmp_path)
    line = _one_line_exit_2(capfd, [*argv, "--config", str(config)])
    assert "missing.db" in line and "retrainer store init" in line
    assert _files(tmp_path) == before  # no empty .db (nor mlflow.db) left behind


def test_a_text_file_as_store_is_named(tmp_path, capfd):
    (tmp_path / "notes.db").write_text("not a database\n")
    config = _config(tmp_path, "sqlite:///notes.db")
    before = _files(tmp_path)
    line = _one_line_exit_2(capfd, ["check", "--config", str(config)])
    assert "notes.db" in line and "not an SQLite database" in line and "store.url" in line
    assert (tmp_path / "notes.db").read_text() == "not a database\n"
    assert _files(tmp_path) == before


def test_store_stats_on_a_missing_file_reports_no_revision_and_creates_nothing(tmp_path, capfd):
    url = f"sqlite:///{tmp_path / 'nothing.db'}"
    assert main(["store", "stats", "--url", url, "--json"]) == 0
    assert '"revision": null' in capfd.readouterr().out
    assert not (tmp_path / "nothing.db").exists()


def test_an_unreachable_postgres_is_one_line(tmp_path, capfd):
    config = _config(tmp_path, "postgresql+psycopg://u@127.0.0.1:1/x")
    line = _one_line_exit_2(capfd, ["check", "--config", str(config)])
    assert "cannot connect" in line and "127.0.0.1:1" in line and "store.url" in line


def test_a_malformed_store_url_is_one_line(tmp_path, capfd):
    config = _config(tmp_path, "mysql://u@h/x")
    line = _one_line_exit_2(capfd, ["check", "--config", str(config)])
    assert "store url uses 'mysql'" in line


@pytest.mark.slow
def test_a_missing_training_table_is_named_and_nothing_is_created(tmp_path, capfd):
    training = tmp_path / "training.db"
    with sqlite3.connect(training) as conn:
        conn.execute("CREATE TABLE other (x REAL)")
    config = _config(tmp_path, "sqlite:///retrainer.db", source_url=f"sqlite:///{training}")
    assert main(["store", "init", "--config", str(config)]) == 0
    capfd.readouterr()
    line = _one_line_exit_2_tail(capfd, ["retrain", "--config", str(config)])
    assert "'loans' does not exist (data.source.table)" in line


@pytest.mark.slow
def test_a_missing_training_file_is_named_and_not_created(tmp_path, capfd):
    config = _config(tmp_path, "sqlite:///retrainer.db", source_url="sqlite:///training.db")
    assert main(["store", "init", "--config", str(config)]) == 0
    capfd.readouterr()
    line = _one_line_exit_2_tail(capfd, ["retrain", "--config", str(config)])
    assert "training.db" in line and "data.source.url" in line
    assert not (tmp_path / "training.db").exists()


def _one_line_exit_2_tail(capfd, argv: list[str]) -> str:
    """A flow command, in its own process (Prefect's console handler keeps the stream it started
    with): its progress lines may precede the error, but no traceback, and the error is one line."""
    script = Path(sys.executable).with_name("retrainer")
    done = subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=300)
    out, err = done.stdout, done.stderr
    assert done.returncode == 2, err
    assert "Traceback" not in err + out
    assert "Failed to send telemetry" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


def test_an_unexpected_failure_is_one_line_not_a_traceback(monkeypatch, capsys) -> None:
    """Whatever breaks inside (a library's RuntimeError), the user sees one line and exit 2."""
    from retrainer.cli import config_cmd, main

    def boom(*args, **kwargs):
        raise RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.\nmore")

    monkeypatch.delenv("RETRAINER_DEBUG", raising=False)
    monkeypatch.setattr(config_cmd, "load_config", boom, raising=False)
    monkeypatch.setattr("retrainer.config.load_config", boom)
    code = main(["config", "validate", "nowhere.yaml"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: unexpected RuntimeError: Timed out") and "RETRAINER_DEBUG" in err
