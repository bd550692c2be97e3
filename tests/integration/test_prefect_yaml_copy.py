"""prefect.yaml copied next to a user's retrainer.yaml (as its header says) must still find its flows:
entrypoints are importable module paths, not file paths inside this repository."""

import shutil
from pathlib import Path

import yaml
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[2]


def test_each_entrypoint_loads_its_flow_from_a_directory_outside_the_repo(tmp_path, monkeypatch):
    shutil.copy(REPO / "prefect.yaml", tmp_path / "prefect.yaml")
    (tmp_path / "retrainer.yaml").write_text("# the user's config lives here\n")
    monkeypatch.chdir(tmp_path)
    deployments = yaml.safe_load((tmp_path / "prefect.yaml").read_text())["deployments"]
    assert {d["name"] for d in deployments} == {"monitor-nightly", "retrain-on-request", "fleet-nightly", "rollout-every-15m"}
    for deployment in deployments:
        entrypoint = deployment["entrypoint"]
        flow = load_flow_from_entrypoint(entrypoint, use_placeholder_flow=False)
        # the loaded object is the real flow function of that module, not an AST placeholder
        assert flow.fn.__module__ == entrypoint.rsplit(".", 1)[0]
        assert flow.fn.__name__ == entrypoint.rsplit(".", 1)[1]
