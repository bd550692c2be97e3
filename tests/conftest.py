"""Fixtures shared across the suite: a real PostgreSQL server for @pytest.mark.postgres tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from pytest_postgresql.janitor import DatabaseJanitor

from retrainer.store.pgserver import TemporaryPostgres, pg_bindir


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
