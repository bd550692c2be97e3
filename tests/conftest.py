"""Fixtures shared across the suite: a real PostgreSQL server, and throwaway MLflow databases."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient
from pytest_postgresql.janitor import DatabaseJanitor

from retrainer.demo.data import generate_stream
from retrainer.demo.world import demo_config, write_config, write_warehouse
from retrainer.store.pgserver import TemporaryPostgres, pg_bindir

from flow_world import NOW, SPEC, World


REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def nothing_written_into_the_repo() -> Iterator[None]:
    """Tests write only into temp dirs: MLflow's defaults (./mlflow.db, ./mlruns, ./mlartifacts) or a
    relative store URL would otherwise litter the checkout — and hide a missing configured path."""
    before = set(os.listdir(REPO))
    yield
    stray = set(os.listdir(REPO)) - before
    assert not stray, f"the test wrote {sorted(stray)} into the repository root"


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[TemporaryPostgres]:
    """One throwaway PostgreSQL server for the session (initdb + pg_ctl, as `postgres` when root)."""
    if pg_bindir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql to run these tests")
    with TemporaryPostgres() as server:
        yield server


@pytest.fixture
def postgresql_url(postgresql_server: TemporaryPostgres) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database, dropped after the test (pytest-postgresql's janitor)."""
    dbname = f"t_{uuid.uuid4().hex[:16]}"
    with DatabaseJanitor(
        user=postgresql_server.user,
        host=postgresql_server.host,
        port=postgresql_server.port,
        dbname=dbname,
    ):
        yield postgresql_server.url(dbname)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness (a temporary API server) for the whole session, started on first use."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def mlflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty, migrated MLflow database to copy; building one runs ~100 migrations (seconds).

    Cached per MLflow version in the system temp dir (never in the repo), so only the first
    session on a machine pays.
    """
    template = Path(tempfile.gettempdir()) / f"retrainer-test-mlflow-{mlflow.__version__}.db"
    if not template.exists():
        staging = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{staging}").search_experiments()
        os.replace(shutil.copy(staging, template.with_suffix(f".{os.getpid()}.tmp")), template)  # atomic publish
    return template


@pytest.fixture(scope="session")
def new_mlflow_dir(
    tmp_path_factory: pytest.TempPathFactory, mlflow_db_template: Path
) -> Callable[[str], Path]:
    """Factory: a fresh temp dir holding a migrated ``mlflow.db`` (tracking URI ``sqlite:///<dir>/mlflow.db``)."""

    def make(prefix: str = "mlflow") -> Path:
        root = tmp_path_factory.mktemp(prefix)
        shutil.copy(mlflow_db_template, root / "mlflow.db")
        return root

    return make


@pytest.fixture(scope="session")
def tiny_model_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) skops model directory to register versions from: retrainer refuses to
    promote, shadow or A/B-test a version it would not load safely, so empty sources no longer do."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    src = tmp_path_factory.mktemp("tiny-model") / "model"
    mlflow.sklearn.save_model(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), str(src), serialization_format="skops")
    return src


@pytest.fixture
def tiny_registry(mlflow_db_template: Path, tiny_model_source: Path) -> Callable[[Path, str, int], str]:
    """Factory: ``(directory, model_name, versions)`` -> the tracking URI of ``directory/mlflow.db``
    (a copy of the migrated template unless the directory already holds one) where ``model_name``
    is registered with ``versions`` versions of the tiny model, all alike. A client of its own:
    never MLflow's process-global default."""

    def make(directory: Path, name: str, versions: int) -> str:
        db = directory / "mlflow.db"
        if not db.exists():
            shutil.copy(mlflow_db_template, db)
        uri = f"sqlite:///{db}"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.create_registered_model(name)
        for _ in range(versions):
            client.create_model_version(name, source=str(tiny_model_source))
        return uri

    return make


# The flow/CLI tests' world (tests/flow_world.py): shared by tests/flows and tests/cli.
@pytest.fixture(scope="session")
def stream():
    return generate_stream(SPEC)


@pytest.fixture
def make_world(tmp_path: Path, mlflow_db_template: Path, stream) -> Callable[..., World]:
    """A fresh workdir: warehouse with labelled rows up to NOW, initialised store, empty MLflow."""

    def make(**config: Any) -> World:
        workdir = tmp_path / f"w-{uuid.uuid4().hex[:6]}"
        workdir.mkdir()
        shutil.copy(mlflow_db_template, workdir / "mlflow.db")
        # The latency check has its own tests; here a loaded CI box must not fail the flow on timing.
        config.setdefault("rollout", {"mode": "direct"})
        config["rollout"] = {**config["rollout"]}
        path = write_config(workdir, demo_config(model_name=f"credit-{uuid.uuid4().hex[:6]}", **config))
        world = World(workdir, path)
        write_warehouse(world.cfg.data.source.url, stream[stream["ts"] < NOW])
        with world.store() as store:
            store.init()
        return world

    return make
