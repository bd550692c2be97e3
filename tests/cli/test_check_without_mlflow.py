"""``retrainer check`` on a store that names its champion does not import MLflow (issue 20).

Importing MLflow cost ~1.25 s of a 2.7 s check. The store's pointer is the truth; MLflow's alias
is read straight from its SQL store (``retrainer.registry_alias``) and MLflow is imported only
when the store names no champion or the alias must be repaired. Checked in a fresh process
(``sys.modules`` at the end of the command), never by timing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from mlflow import MlflowClient

from retrainer.config import example_config_path
from retrainer.store import Store

MODEL = "credit.eu"

_RUN = """
import json, sys
from retrainer.cli import main
code = main(["check", "--config", sys.argv[1], "--no-audit", "--json"])
print(json.dumps({"code": code, "mlflow": sorted(m for m in sys.modules if m.split(".")[0] == "mlflow")[:3]}))
"""


def _world(tmp_path: Path, mlflow_db_template: Path) -> tuple[Path, MlflowClient]:
    shutil.copy(mlflow_db_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = yaml.safe_load(example_config_path().read_text())
    cfg["model"]["name"] = MODEL
    cfg["store"]["url"] = f"sqlite:///{tmp_path / 'retrainer.db'}"
    cfg["mlflow"] = {"tracking_uri": uri}
    cfg["triggers"] = [{"type": "model_age", "max_age": "30d"}]
    path = tmp_path / "retrainer.yaml"
    path.write_text(yaml.safe_dump(cfg))
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(MODEL)
    client.create_model_version(MODEL, source=str(tmp_path / "artifacts"))
    client.set_registered_model_alias(MODEL, "champion", "1")
    with Store.open(cfg["store"]["url"]) as store:
        store.init()
        store.swap_champion(MODEL, expected=None, new="1", action="promote", actor="test", reason="test")
    return path, client


def _check(config: Path) -> tuple[dict, dict]:
    done = subprocess.run([sys.executable, "-c", _RUN, str(config)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    *report, last = done.stdout.strip().splitlines()
    return json.loads("\n".join(report)), json.loads(last)


def test_check_of_a_store_that_names_its_champion_does_not_import_mlflow(tmp_path, mlflow_db_template):
    config, _ = _world(tmp_path, mlflow_db_template)
    report, process = _check(config)
    assert process == {"code": 0, "mlflow": []}
    assert report["checks"]["model_age"]["evidence"]["version"] == "1"


def test_a_missing_alias_makes_check_ask_mlflow_and_repair_it(tmp_path, mlflow_db_template):
    config, client = _world(tmp_path, mlflow_db_template)
    client.delete_registered_model_alias(MODEL, "champion")  # a failed alias move, a hand edit in the UI
    report, process = _check(config)
    assert process["code"] == 0 and process["mlflow"]  # the repair needs MLflow itself
    assert report["checks"]["model_age"]["evidence"]["version"] == "1"
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == "1"
