"""Read one alias of a database-backed MLflow registry without importing MLflow.

``retrainer check`` needs the champion, which the store names (its pointer is the truth); it only
has to make sure MLflow's ``champion`` alias agrees, and repair it if not. Importing MLflow to
ask costs more than the whole check (~1.25 s of 2.7 s), so this module reads the alias where an
MLflow SQL store keeps it: the table ``registered_model_aliases`` (name, alias, version, and a
workspace since MLflow 3), with SQLAlchemy, read-only.

It answers only when it is sure. A tracking server (``http://``), a file store, MLflow
workspaces, a missing database file, a table shaped otherwise, or no row (or several) for the
model: ``None``, and the caller asks MLflow itself (:class:`retrainer.registry.Registry`), which
also repairs. A wrong "in sync" is the one answer this must never give.
"""

from __future__ import annotations

import os

CHAMPION = "champion"
CHALLENGER = "challenger"

_BACKENDS = ("sqlite", "postgresql", "mysql", "mssql")


def known_alias_version(registry_uri: str, model_name: str, alias: str) -> str | None:
    """The version ``alias`` of ``model_name`` points at, read from MLflow's SQL store; None when
    it cannot be known this way (see the module docstring)."""
    if os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() in ("1", "true") or os.environ.get("MLFLOW_WORKSPACE"):
        return None  # a workspace other than MLflow's default may hold the model
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    try:
        url = sa.engine.make_url(registry_uri)
    except Exception:  # noqa: BLE001 - not a database URL (http://, file:, databricks)
        return None
    if url.get_backend_name() not in _BACKENDS:
        return None
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")  # the driver retrainer depends on
    if url.get_backend_name() == "sqlite" and (not url.database or not os.path.exists(url.database)):
        return None  # connecting would create an empty file
    aliases = sa.table("registered_model_aliases", sa.column("name"), sa.column("alias"), sa.column("version"))
    query = sa.select(aliases.c.version).where(aliases.c.name == model_name, aliases.c.alias == alias).limit(2)
    engine = sa.create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(query).all()
    except Exception:  # noqa: BLE001 - no such table, a driver missing, a locked file: ask MLflow
        return None
    finally:
        engine.dispose()
    return str(rows[0][0]) if len(rows) == 1 and rows[0][0] is not None else None


__all__ = ["CHALLENGER", "CHAMPION", "known_alias_version"]
