"""``known_alias_version`` answers only when it is sure; otherwise None (the caller asks MLflow)."""

from __future__ import annotations

import shutil

from mlflow import MlflowClient

from retrainer.registry_alias import CHAMPION, known_alias_version


def test_reads_the_alias_mlflow_itself_reports(tmp_path, mlflow_db_template):
    shutil.copy(mlflow_db_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    for name in ("m", "m.eu"):
        client.create_registered_model(name)
        for _ in range(3):
            client.create_model_version(name, source=str(tmp_path / "a"))
    client.set_registered_model_alias("m", CHAMPION, "2")
    client.set_registered_model_alias("m.eu", CHAMPION, "3")
    assert known_alias_version(uri, "m", CHAMPION) == str(client.get_model_version_by_alias("m", CHAMPION).version) == "2"
    assert known_alias_version(uri, "m.eu", CHAMPION) == "3"
    assert known_alias_version(uri, "m", "challenger") is None  # no such alias
    assert known_alias_version(uri, "nobody", CHAMPION) is None


def test_anything_it_cannot_read_is_unknown_and_nothing_is_created(tmp_path, monkeypatch):
    assert known_alias_version("http://127.0.0.1:5000", "m", CHAMPION) is None  # a tracking server
    assert known_alias_version(str(tmp_path / "mlruns"), "m", CHAMPION) is None  # a file store
    missing = tmp_path / "missing.db"
    assert known_alias_version(f"sqlite:///{missing}", "m", CHAMPION) is None and not missing.exists()
    other = tmp_path / "other.db"
    import sqlite3

    sqlite3.connect(other).close()  # a database without MLflow's table
    assert known_alias_version(f"sqlite:///{other}", "m", CHAMPION) is None
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
    assert known_alias_version(f"sqlite:///{other}", "m", CHAMPION) is None
