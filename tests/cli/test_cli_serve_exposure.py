"""`retrainer serve` on a non-loopback address without a token refuses to start (one line, exit 2)
unless told `--insecure`; loopback, a token (config or RETRAINER_API_TOKEN) or --insecure start it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from retrainer.cli import main
from retrainer.deployments.serving.app import check_exposure
from retrainer.errors import ConfigError
from retrainer.store import Store


@pytest.fixture
def config(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.delenv("RETRAINER_API_TOKEN", raising=False)
    Store.open(f"sqlite:///{tmp_path / 'store.db'}").init()
    path = tmp_path / "retrainer.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"name": "m"}, "store": {"url": "sqlite:///store.db"},
        "data": {"source": {"table": "t"}, "features": [{"name": "x1"}]},
        "serving": {"host": "0.0.0.0"},
    }))
    return path


@pytest.fixture
def started(monkeypatch) -> list[dict]:
    """run_server replaced: the tests check the decision to start, not uvicorn."""
    import retrainer.deployments.serving.app as app

    calls: list[dict] = []
    monkeypatch.setattr(app, "run_server", lambda cfg, **kw: calls.append(kw))
    return calls


def test_public_bind_without_token_is_refused(config, started, capsys) -> None:
    assert main(["serve", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'0.0.0.0' is not loopback" in err and "--insecure" in err
    assert main(["serve", "--config", str(config), "--host", "10.1.2.3"]) == 2
    assert started == []


def test_insecure_token_or_loopback_start(config, started, capsys, monkeypatch) -> None:
    assert main(["serve", "--config", str(config), "--insecure"]) == 0
    assert main(["serve", "--config", str(config), "--host", "127.0.0.1"]) == 0
    monkeypatch.setenv("RETRAINER_API_TOKEN", "s3cret")
    assert main(["serve", "--config", str(config)]) == 0
    assert [c["insecure"] for c in started] == [True, False, False]


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    check_exposure(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_other_addresses_need_a_token(host: str) -> None:
    with pytest.raises(ConfigError, match="not loopback"):
        check_exposure(host, None)
    check_exposure(host, "token")
    check_exposure(host, None, insecure=True)


def test_an_unusable_spool_directory_is_one_line_before_the_server_starts(tmp_path: Path, capsys, monkeypatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn.Server, "run", lambda self: pytest.fail("uvicorn started"))
    Store.open(f"sqlite:///{tmp_path / 'store.db'}").init()
    (tmp_path / "afile").write_text("not a directory")
    path = tmp_path / "retrainer.yaml"
    path.write_text(yaml.safe_dump({
        "model": {"name": "m"}, "store": {"url": "sqlite:///store.db"},
        "mlflow": {"tracking_uri": "sqlite:///mlflow.db"},
        "data": {"source": {"table": "t"}, "features": [{"name": "x1"}]},
        "serving": {"commit": "spool", "spool_dir": "afile/spool"},
    }))
    assert main(["serve", "--config", str(path)]) == 2
    # Nothing else either: not MLflow's "Creating initial MLflow database tables..." for its fresh database.
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "cannot open the prediction spool in" in lines[0] and "serving.spool_dir" in lines[0]
