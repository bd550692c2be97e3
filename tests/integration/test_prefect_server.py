"""prefect.yaml against a real Prefect server on loopback — the README's walkthrough, step by step:
start the server, create the work pool, deploy from prefect.yaml, let an event trigger a retrain,
start a worker, run the monitor deployment and see it complete."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from retrainer.demo.data import StreamSpec, generate_stream
from retrainer.demo.world import demo_config, write_config, write_warehouse
from retrainer.store import Store

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    env: dict[str, str]

    def cli(self, *args: str, timeout: float = 180, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([PREFECT, "--no-prompt", *args], cwd=REPO, env=self.env, text=True,
                              capture_output=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def client(self):
        from prefect.client.orchestration import get_client
        from prefect.settings import PREFECT_API_URL, temporary_settings

        class _Ctx:
            def __enter__(inner):
                inner.settings = temporary_settings(updates={PREFECT_API_URL: self.url})
                inner.settings.__enter__()
                inner.client = get_client(sync_client=True)
                return inner.client.__enter__()

            def __exit__(inner, *exc):
                inner.client.__exit__(*exc)
                inner.settings.__exit__(*exc)

        return _Ctx()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_TEST_MODE", None)
    log = open(home / "server.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("prefect server did not start:\n" + (home / "server.log").read_text())
            time.sleep(0.5)
        server = Server(url, env)
        server.cli("work-pool", "create", "retrainer", "--type", "process")
        server.cli("deploy", "--all")
        yield server
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _deployments(server: Server) -> dict:
    with server.client() as client:
        return {d.name: d for d in client.read_deployments()}


def test_deploy_creates_the_deployments_the_nightly_schedule_and_the_event_trigger(server):
    deployments = _deployments(server)
    assert {"monitor-nightly", "retrain-on-request", "fleet-nightly"} <= set(deployments)
    monitor = deployments["monitor-nightly"]
    assert [s.schedule.cron for s in monitor.schedules] == ["0 2 * * *"]
    assert monitor.work_pool_name == "retrainer"
    with server.client() as client:
        automations = client.read_automations()
    [automation] = [a for a in automations if a.name.startswith("retrain-on-request")]
    assert automation.trigger.expect == {"retrainer.retrain.requested"}
    assert automation.trigger.match.model_dump()["prefect.resource.id"] == "retrainer.model.*"
    [action] = automation.actions
    assert action.deployment_id == deployments["retrain-on-request"].id


def _wait_for_runs(server: Server, deployment_id, n: int, timeout: float = 90):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout
    while True:
        with server.client() as client:
            runs = client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])))
        if len(runs) >= n or time.monotonic() > deadline:
            return runs
        time.sleep(1)


def test_a_retrain_request_event_starts_a_retrain_run_with_the_event_payload(server):
    retrain_id = _deployments(server)["retrain-on-request"].id
    server.cli("event", "emit", "retrainer.retrain.requested", "--resource-id", "retrainer.model.credit",
               "--payload", '{"config_path": "/srv/models/credit/retrainer.yaml", "reasons": ["drift", "performance"]}')
    runs = _wait_for_runs(server, retrain_id, 1)
    assert len(runs) == 1, "the event did not trigger the retrain deployment"
    assert runs[0].parameters == {"config_path": "/srv/models/credit/retrainer.yaml", "reasons": ["drift", "performance"]}


def _run_once(server: Server, deployment: str, config: Path) -> None:
    """Start a run of ``deployment`` on ``config``, let one worker pick it up; it must complete."""
    started = server.cli("deployment", "run", deployment, "--param", f"config_path={config}")
    run_id = next(w for w in started.stdout.split() if w.count("-") == 4)  # the UUID in "UUID: ..."
    worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", "retrainer", "--run-once"],
                              cwd=REPO, env=server.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = worker.communicate(timeout=300)
    with server.client() as client:
        state = client.read_flow_run(uuid.UUID(run_id)).state
    assert state.is_completed(), f"{deployment} run ended {state.name}: {state.message}\n{output[-3000:]}"


def test_a_worker_runs_the_monitor_deployment_to_completion(server, tmp_path, mlflow_db_template):
    # A model with history: the walkthrough's retrainer.yaml.
    workdir = tmp_path / "model"
    workdir.mkdir()
    shutil.copy(mlflow_db_template, workdir / "mlflow.db")
    name = f"credit-{uuid.uuid4().hex[:6]}"
    config = write_config(workdir, demo_config(model_name=name, triggers=[{"type": "schedule", "interval": "7d"}]))
    write_warehouse(f"sqlite:///{workdir / 'warehouse.db'}", generate_stream(StreamSpec(days=3, rows_per_day=50)))
    with Store.open(f"sqlite:///{workdir / 'retrainer.db'}") as store:
        store.init()

    _run_once(server, "monitor/monitor-nightly", config)
    with Store.open(f"sqlite:///{workdir / 'retrainer.db'}") as store:
        audit = store.evaluations(name)
    assert {e.trigger for e in audit} >= {"schedule"}
    assert datetime.now(timezone.utc) - audit[-1].evaluated_at < timedelta(minutes=10)


def test_the_rollout_deployment_runs_every_15_minutes_and_on_the_retrain_and_rollout_events(server):
    deployments = _deployments(server)
    rollout = deployments["rollout-every-15m"]
    assert [s.schedule.interval for s in rollout.schedules] == [timedelta(minutes=15)]
    with server.client() as client:
        automations = client.read_automations()
    [automation] = [a for a in automations if a.name.startswith("rollout-every-15m")]
    assert automation.trigger.expect == {"retrainer.retrain.succeeded", "retrainer.rollout.advanced"}
    [action] = automation.actions
    assert action.deployment_id == rollout.id


def test_a_worker_runs_the_rollout_deployment_and_the_rollout_advances(server, tmp_path, tiny_registry):
    """A challenger handed over (staged) is moved into shadow by a flow run of the deployment."""
    import yaml

    from retrainer.deployments.rollout.promotion import promote
    from retrainer.registry import Registry

    workdir = tmp_path / "model"
    workdir.mkdir()
    name = f"rollout-{uuid.uuid4().hex[:6]}"
    uri = tiny_registry(workdir, name, 2)
    config = workdir / "retrainer.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": name}, "store": {"url": "sqlite:///retrainer.db"}, "mlflow": {"tracking_uri": uri},
        "data": {"source": {"table": "t"}, "features": [{"name": "x1"}]}, "rollout": {"mode": "shadow"},
    }))
    with Store.open(f"sqlite:///{workdir / 'retrainer.db'}") as store:
        store.init()
        promote(Registry(uri, model_name=name), store, version="1", expected_champion=None, actor="test", reason="first")
        staged = store.create_rollout(name, version="2", champion_version="1", mode="shadow", stage="staged",
                                      at=datetime.now(timezone.utc), actor="test", reason="handed over")

    _run_once(server, "rollout/rollout-every-15m", config)
    with Store.open(f"sqlite:///{workdir / 'retrainer.db'}") as store:
        moved = store.rollout(staged.id)
        ledger = [e.action for e in store.ledger(name)]
    assert [s["stage"] for s in moved.stages] == ["staged", "shadow"] and moved.decision == "advanced"
    assert ledger[-2:] == ["shadow_start", "rollout_advance"]
