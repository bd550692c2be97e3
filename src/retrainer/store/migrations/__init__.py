"""Alembic migrations of the store; run through :meth:`retrainer.store.Store.upgrade`, no alembic.ini needed."""
