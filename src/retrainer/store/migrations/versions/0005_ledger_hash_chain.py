"""The promotion ledger becomes hash-chained, and REPLACE / forged inserts are refused.

Revision ID: 0005_ledger_chain
Revises: 0004_shadow_details
Create Date: 2026-11-29

* ``promotion_ledger.prev_hash`` and ``.row_hash``: SHA-256 over the row's content and the
  previous row's hash (``retrainer.store.ledger_chain``). Existing rows are chained in id order
  during the upgrade (the append-only triggers are lifted for that one backfill, in the same
  transaction).
* A BEFORE INSERT guard: a row must carry a hash and chain onto the newest row. On SQLite this
  also refuses ``REPLACE INTO`` an existing id (REPLACE's implicit delete fires no DELETE
  trigger, so without the guard it rewrote a row); on PostgreSQL upserts (ON CONFLICT DO UPDATE)
  and TRUNCATE are already refused by the statement trigger of revision 1.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0005_ledger_chain"
down_revision = "0004_shadow_details"
branch_labels = None
depends_on = None

_GENESIS = "0" * 64
_SQLITE_GUARD = (
    "CREATE TRIGGER promotion_ledger_chain BEFORE INSERT ON promotion_ledger "
    "WHEN NEW.id IN (SELECT id FROM promotion_ledger) OR NEW.row_hash IS NULL "
    "OR NEW.prev_hash IS NOT coalesce((SELECT row_hash FROM promotion_ledger ORDER BY id DESC LIMIT 1), '"
    + _GENESIS
    + "') BEGIN SELECT RAISE(ABORT, 'promotion_ledger is append-only: a row must chain onto the newest row'); END"
)
_PG_GUARD_FN = (
    "CREATE FUNCTION retrainer_ledger_chain() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN "
    "IF NEW.row_hash IS NULL OR NEW.prev_hash IS DISTINCT FROM coalesce("
    "(SELECT row_hash FROM promotion_ledger ORDER BY id DESC LIMIT 1), '" + _GENESIS + "') THEN "
    "RAISE EXCEPTION 'promotion_ledger is append-only: a row must chain onto the newest row'; END IF; "
    "RETURN NEW; END $$"
)


def _backfill() -> None:
    # The hash function is copied here, not imported: a migration must not change meaning when
    # the live code does (the live one is retrainer.store.ledger_chain.row_hash; a test pins both).
    import hashlib

    fields = ("model_name", "action", "from_version", "to_version", "actor", "reason", "run_id", "at", "details")
    bind = op.get_bind()
    prev = _GENESIS
    rows = bind.execute(sa.text("SELECT * FROM promotion_ledger ORDER BY id")).mappings().all()
    for r in rows:
        content = {f: r[f] for f in fields}
        if isinstance(content["details"], str):  # SQLite hands JSON back as text in raw SQL
            content["details"] = json.loads(content["details"])
        content["at"] = repr(float(content["at"]))
        payload = json.dumps([prev, content], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        digest = hashlib.sha256(payload.encode("utf-8")).hexdigest()
        bind.execute(
            sa.text("UPDATE promotion_ledger SET prev_hash = :p, row_hash = :h WHERE id = :id"),
            {"p": prev, "h": digest, "id": r["id"]},
        )
        prev = digest


def upgrade() -> None:
    op.add_column("promotion_ledger", sa.Column("prev_hash", sa.String(64)))
    op.add_column("promotion_ledger", sa.Column("row_hash", sa.String(64)))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE promotion_ledger DISABLE TRIGGER promotion_ledger_append_only")
        _backfill()
        op.execute("ALTER TABLE promotion_ledger ENABLE TRIGGER promotion_ledger_append_only")
        op.execute(_PG_GUARD_FN)
        op.execute(
            "CREATE TRIGGER promotion_ledger_chain BEFORE INSERT ON promotion_ledger "
            "FOR EACH ROW EXECUTE FUNCTION retrainer_ledger_chain()"
        )
    else:
        op.execute("DROP TRIGGER promotion_ledger_no_update")
        _backfill()
        op.execute(
            "CREATE TRIGGER promotion_ledger_no_update BEFORE UPDATE ON promotion_ledger "
            "BEGIN SELECT RAISE(ABORT, 'promotion_ledger is append-only'); END"
        )
        op.execute(_SQLITE_GUARD)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER promotion_ledger_chain ON promotion_ledger")
        op.execute("DROP FUNCTION retrainer_ledger_chain()")
    else:
        op.execute("DROP TRIGGER promotion_ledger_chain")
    op.drop_column("promotion_ledger", "row_hash")
    op.drop_column("promotion_ledger", "prev_hash")
