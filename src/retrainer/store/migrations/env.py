"""Alembic environment: always driven programmatically by retrainer.store.migrate.

The caller opens the connection (so SQLite gets its BEGIN IMMEDIATE and pragmas) and passes it
in ``config.attributes["connection"]``; migrations never build an engine of their own.
"""

from __future__ import annotations

from alembic import context

from retrainer.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - guarded by retrainer.store.migrate
    raise RuntimeError("retrainer migrations run through `retrainer store upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=context.config.get_main_option("version_table"),
    # SQLite cannot ALTER most things in place; batch mode recreates the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
