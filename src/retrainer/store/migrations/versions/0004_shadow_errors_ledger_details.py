"""Shadow comparisons keep the champion's latency and the shadow's errors; ledger details.

Revision ID: 0004_shadow_details
Revises: 0003_prediction_labels
Create Date: 2025-01-04

Downgrading deletes the error rows (they have no shadow prediction) and the ledger's details
(a shadow's sample then falls back to ``rollout.shadow.sample``).

* ``shadow_comparisons.champion_latency_ms`` and ``.error`` (both nullable), and
  ``shadow_prediction`` becomes nullable (NULL when the shadow model failed on the request),
  so ``retrainer shadow report`` computes latency of both models and the error rate from
  stored rows instead of a running server's memory.
* ``promotion_ledger.details``: structured facts of a step (a shadow's sample share), where
  rows used to carry ``[sample=0.25]`` in their reason. Old rows keep their reason; the
  reader still understands it. Adding a nullable column leaves the append-only triggers alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004_shadow_details"
down_revision = "0003_prediction_labels"
branch_labels = None
depends_on = None

Json = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    # SQLite cannot drop NOT NULL in place: batch mode copies the table (and its index) over.
    with op.batch_alter_table("shadow_comparisons") as batch:
        batch.alter_column("shadow_prediction", existing_type=sa.Double, nullable=True)
        batch.add_column(sa.Column("champion_latency_ms", sa.Double))
        batch.add_column(sa.Column("error", sa.Text))
    # A plain ADD COLUMN on both dialects: the ledger table (and its triggers) is not rebuilt.
    op.add_column("promotion_ledger", sa.Column("details", Json))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN (SQLite >= 3.35): the append-only ledger is not rebuilt.
    op.drop_column("promotion_ledger", "details")
    op.execute("DELETE FROM shadow_comparisons WHERE shadow_prediction IS NULL")  # error rows
    with op.batch_alter_table("shadow_comparisons") as batch:
        batch.drop_column("error")
        batch.drop_column("champion_latency_ms")
        batch.alter_column("shadow_prediction", existing_type=sa.Double, nullable=False)
