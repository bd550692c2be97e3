"""rollouts: one row per challenger on its way to traffic, its stage persisted.

Revision ID: 0007_rollouts
Revises: 0006_label_arrival
Create Date: 2026-11-29

The rollout flow (``retrainer.flows.rollout``) moves a challenger ``staged -> shadow -> ab ->
champion`` or ends it ``rejected`` / ``rolled_back`` / ``aborted``; a newer challenger that
arrives mid-rollout waits as ``queued``. At most one rollout per model is in flight (staged,
shadow or ab): a partial unique index makes the database refuse a second one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007_rollouts"
down_revision = "0006_label_arrival"
branch_labels = None
depends_on = None

_IN_FLIGHT = "stage IN ('staged', 'shadow', 'ab')"


def upgrade() -> None:
    big_id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "rollouts",
        sa.Column("id", big_id, nullable=False, autoincrement=True),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("champion_version", sa.String(255)),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("stage_started_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("ab_test_id", big_id, sa.ForeignKey("ab_tests.id", name="fk_rollouts_ab_test_id_ab_tests")),
        sa.Column("run_id", big_id, sa.ForeignKey("retrain_runs.id", name="fk_rollouts_run_id_retrain_runs")),
        sa.Column("decision", sa.String(32)),
        sa.Column("explanation", sa.Text),
        sa.Column("evidence", json),
        sa.Column("stages", json, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
        sa.CheckConstraint(
            "stage IN ('queued', 'staged', 'shadow', 'ab', 'champion', 'rejected', 'rolled_back', 'aborted')",
            name="ck_rollouts_stage",
        ),
    )
    op.create_index("ix_rollouts_model_name_stage", "rollouts", ["model_name", "stage"])
    op.create_index(
        "ux_rollouts_in_flight", "rollouts", ["model_name"], unique=True,
        sqlite_where=sa.text(_IN_FLIGHT), postgresql_where=sa.text(_IN_FLIGHT),
    )


def downgrade() -> None:
    op.drop_index("ux_rollouts_in_flight", table_name="rollouts")
    op.drop_index("ix_rollouts_model_name_stage", table_name="rollouts")
    op.drop_table("rollouts")
