"""model_state: the champion pointer that promotion compare-and-sets.

Revision ID: 0002_model_state
Revises: 0001_initial
Create Date: 2025-01-02

Existing databases have no champion recorded; the first promotion after the upgrade sets it
(compare-and-set with expected=None).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_model_state"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_state",
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("champion_version", sa.String(255)),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("model_name", name="pk_model_state"),
    )


def downgrade() -> None:
    op.drop_table("model_state")
