"""Initial store: inference log, labels, audit, runs, ledger, A/B, shadow, profiles.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01

Tables are spelled out here rather than taken from schema.py: a migration must keep creating
exactly what it created the day it shipped.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")
Name = sa.String(255)
Time = sa.Double


def upgrade() -> None:
    op.create_table(
        "ab_tests",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_name", Name, nullable=False),
        sa.Column("champion_version", Name, nullable=False),
        sa.Column("challenger_version", Name, nullable=False),
        sa.Column("split", sa.Double, nullable=False),
        sa.Column("salt", Name, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", Time, nullable=False),
        sa.Column("stopped_at", Time),
        sa.Column("stop_reason", sa.Text),
        sa.Column("config", Json),
        sa.Column("result", Json),
        sa.CheckConstraint("status IN ('running', 'stopped')", name="ck_ab_tests_status"),
        sa.CheckConstraint("split > 0 AND split < 1", name="ck_ab_tests_split"),
        sa.PrimaryKeyConstraint("id", name="pk_ab_tests"),
    )
    op.create_index(
        "ux_ab_tests_running",
        "ab_tests",
        ["model_name"],
        unique=True,
        sqlite_where=sa.text("status = 'running'"),
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_table(
        "ab_assignments",
        sa.Column("ab_test_id", BigId, nullable=False),
        sa.Column("unit_id", Name, nullable=False),
        sa.Column("arm", sa.String(32), nullable=False),
        sa.Column("assigned_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("ab_test_id", "unit_id", name="pk_ab_assignments"),
        sa.ForeignKeyConstraint(
            ["ab_test_id"], ["ab_tests.id"], ondelete="CASCADE", name="fk_ab_assignments_ab_test_id_ab_tests"
        ),
    )
    op.create_table(
        "predictions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("request_id", Name, nullable=False),
        sa.Column("model_name", Name, nullable=False),
        sa.Column("model_version", Name),
        sa.Column("unit_id", Name),
        sa.Column("arm", sa.String(32)),
        sa.Column("ts", Time, nullable=False),
        sa.Column("prediction", sa.Double, nullable=False),
        sa.Column("score", sa.Double),
        sa.Column("ab_test_id", BigId),
        sa.PrimaryKeyConstraint("id", name="pk_predictions"),
        sa.UniqueConstraint("request_id", name="uq_predictions_request_id"),
        sa.ForeignKeyConstraint(["ab_test_id"], ["ab_tests.id"], name="fk_predictions_ab_test_id_ab_tests"),
    )
    op.create_index("ix_predictions_model_name_ts", "predictions", ["model_name", "ts"])
    op.create_table(
        "feature_chunks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_name", Name, nullable=False),
        sa.Column("ts_min", Time, nullable=False),
        sa.Column("ts_max", Time, nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("prediction_ids", sa.LargeBinary, nullable=False),
        sa.Column("ts", sa.LargeBinary, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feature_chunks"),
    )
    op.create_index("ix_feature_chunks_model_name_ts_max", "feature_chunks", ["model_name", "ts_max"])
    op.create_table(
        "feature_chunk_columns",
        sa.Column("chunk_id", BigId, nullable=False),
        sa.Column("feature", Name, nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("chunk_id", "feature", name="pk_feature_chunk_columns"),
        sa.ForeignKeyConstraint(
            ["chunk_id"],
            ["feature_chunks.id"],
            ondelete="CASCADE",
            name="fk_feature_chunk_columns_chunk_id_feature_chunks",
        ),
    )
    op.create_table(
        "labels",
        sa.Column("request_id", Name, nullable=False),
        sa.Column("label", sa.Double, nullable=False),
        sa.Column("ts", Time, nullable=False),
        sa.Column("received_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name="pk_labels"),
    )
    op.create_index("ix_labels_ts", "labels", ["ts"])
    op.create_table(
        "trigger_evaluations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("check_id", Name, nullable=False),
        sa.Column("model_name", Name, nullable=False),
        sa.Column("evaluated_at", Time, nullable=False),
        sa.Column("trigger", Name, nullable=False),
        sa.Column("fired", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("value", sa.Double),
        sa.Column("threshold", sa.Double),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", Json),
        sa.PrimaryKeyConstraint("id", name="pk_trigger_evaluations"),
    )
    op.create_index(
        "ix_trigger_evaluations_model_name_evaluated_at", "trigger_evaluations", ["model_name", "evaluated_at"]
    )
    op.create_table(
        "retrain_runs",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_name", Name, nullable=False),
        sa.Column("flow_run_id", Name),
        sa.Column("reasons", Json, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", Time, nullable=False),
        sa.Column("finished_at", Time),
        sa.Column("metrics", Json),
        sa.Column("version", Name),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_retrain_runs"),
    )
    op.create_index("ix_retrain_runs_model_name_started_at", "retrain_runs", ["model_name", "started_at"])
    op.create_table(
        "promotion_ledger",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_name", Name, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_version", Name),
        sa.Column("to_version", Name),
        sa.Column("actor", Name, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("run_id", BigId),
        sa.Column("at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_promotion_ledger"),
        sa.ForeignKeyConstraint(["run_id"], ["retrain_runs.id"], name="fk_promotion_ledger_run_id_retrain_runs"),
    )
    op.create_index("ix_promotion_ledger_model_name", "promotion_ledger", ["model_name"])
    _forbid_ledger_changes()
    op.create_table(
        "shadow_comparisons",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_name", Name, nullable=False),
        sa.Column("request_id", Name, nullable=False),
        sa.Column("champion_version", Name, nullable=False),
        sa.Column("shadow_version", Name, nullable=False),
        sa.Column("champion_prediction", sa.Double, nullable=False),
        sa.Column("shadow_prediction", sa.Double, nullable=False),
        sa.Column("champion_score", sa.Double),
        sa.Column("shadow_score", sa.Double),
        sa.Column("latency_ms", sa.Double),
        sa.Column("ts", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_shadow_comparisons"),
    )
    op.create_index("ix_shadow_comparisons_model_name_ts", "shadow_comparisons", ["model_name", "ts"])
    op.create_table(
        "reference_profiles",
        sa.Column("model_name", Name, nullable=False),
        sa.Column("version", Name, nullable=False),
        sa.Column("profile", Json, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("model_name", "version", name="pk_reference_profiles"),
    )


def _forbid_ledger_changes() -> None:
    """The ledger is append-only: the database refuses UPDATE and DELETE, whoever asks."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION retrainer_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'promotion_ledger is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER promotion_ledger_append_only BEFORE UPDATE OR DELETE OR TRUNCATE "
            "ON promotion_ledger FOR EACH STATEMENT EXECUTE FUNCTION retrainer_ledger_append_only()"
        )
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER promotion_ledger_no_{verb.lower()} BEFORE {verb} ON promotion_ledger "
                "BEGIN SELECT RAISE(ABORT, 'promotion_ledger is append-only'); END"
            )


def downgrade() -> None:
    for table in (
        "reference_profiles",
        "shadow_comparisons",
        "promotion_ledger",
        "retrain_runs",
        "trigger_evaluations",
        "labels",
        "feature_chunk_columns",
        "feature_chunks",
        "predictions",
        "ab_assignments",
        "ab_tests",
    ):
        op.drop_table(table)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS retrainer_ledger_append_only()")
