"""``retrainer simulate`` through the real entry point, on a SQLite training table."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
import yaml

from retrainer.cli import main

from .conftest import make_cfg, stream


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    frame = stream(days=120)
    frame["ts"] = frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    engine = sa.create_engine(f"sqlite:///{root / 'training.db'}")
    with engine.begin() as conn:
        frame.to_sql("rows", conn, index=False)
    engine.dispose()
    cfg = make_cfg().model_dump(mode="json", by_alias=True, exclude={"base_dir"})
    cfg["data"]["source"]["url"] = "sqlite:///training.db"
    cfg["store"]["url"] = "sqlite:///r.db"
    path = root / "retrainer.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_simulate_json_plot_and_report(config_file, tmp_path, capsys):
    png, md = tmp_path / "sim.png", tmp_path / "sim.md"
    argv = ["simulate", "--config", str(config_file), "--start", "2025-02-15", "--end", "2025-04-26",
            "--every", "7d", "--compare", "never,periodic:14d,oracle", "--retrain-cost", "30",
            "--label-delay", "1d", "--plot", str(png), "--report", str(md), "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert [p["policy"] for p in out["policies"]] == ["configured", "never", "periodic:14d", "oracle"]
    assert out["steps"] == 10 and out["settings"]["label_delay"] == "1d" and out["settings"]["train_window"] == "30d"
    periodic = out["policies"][2]
    assert periodic["retrains"] == 4  # steps 2, 4, 6, 8 (14 days after the previous one)
    assert periodic["cost"] == 30 * periodic["retrains"] + periodic["errors"]
    assert out["policies"][3]["regret"] == 0 and all(p["regret"] >= 0 for p in out["policies"])
    assert len(out["per_step"]["never"]) == 10
    assert png.stat().st_size > 10_000
    text = md.read_text()
    assert "| periodic:14d | 4 |" in text and "sim.png" in text


def test_simulate_table(config_file, capsys):
    argv = ["simulate", "--config", str(config_file), "--start", "2025-02-15", "--end", "2025-03-15",
            "--every", "7d", "--policy", "never", "--compare", "always"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "never" in out and "always" in out and "regret" in out


@pytest.mark.parametrize(("args", "message"), [
    (["--every", "soon"], "--every"),
    (["--compare", "periodic:often"], "periodic:often"),
    (["--compare", "no_such_trigger"], "unknown trigger type"),
    (["--start", "2031-01-01", "--end", "2031-02-01"], "no row between"),
    (["--retrain-cost", "-1"], "--retrain-cost"),
])
def test_simulate_errors_are_one_line_and_leave_no_file(config_file, tmp_path, capsys, args, message):
    png, md = tmp_path / "x.png", tmp_path / "x.md"
    base = {"--start": "2025-02-15", "--end": "2025-03-15", "--every": "7d", "--compare": "never"}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    argv = ["simulate", "--config", str(config_file), "--plot", str(png), "--report", str(md)]
    argv += [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_simulate_output_folder_must_exist(config_file, tmp_path, capsys):
    argv = ["simulate", "--config", str(config_file), "--start", "2025-02-15", "--end", "2025-03-15",
            "--plot", str(tmp_path / "nope" / "x.png")]
    assert main(argv) == 2
    assert "does not exist" in capsys.readouterr().err


def test_label_delay_defaults_to_zero_without_a_store_and_creates_none(config_file, capsys):
    argv = ["simulate", "--config", str(config_file), "--start", "2025-02-15", "--end", "2025-03-01",
            "--policy", "never", "--compare", "always", "--json"]
    assert main(argv) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings["label_delay"] == "0s" and "no store" in settings["label_delay_from"]
    assert not (config_file.parent / "r.db").exists()
