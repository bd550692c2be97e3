"""predictions.label / label_ts: the latest label denormalised onto its prediction.

Revision ID: 0003_prediction_labels
Revises: 0002_model_state
Create Date: 2025-01-03

The labelled-window read joined predictions to labels on text request ids over the whole
window (~5 s for 1M labelled rows on SQLite). From this revision the latest label and its
time live on the prediction row too (``labels`` stays the source of truth, kept in step by
every label and prediction write), and the index on (model_name, ts) becomes one that covers
the window reads. Existing labels are copied over here.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_prediction_labels"
down_revision = "0002_model_state"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns: a plain ALTER TABLE ADD COLUMN on both dialects (no table rebuild).
    op.add_column("predictions", sa.Column("label", sa.Double))
    op.add_column("predictions", sa.Column("label_ts", sa.Double))
    # Correlated subqueries: the same statement works on SQLite and PostgreSQL.
    op.execute(
        "UPDATE predictions SET "
        "label = (SELECT l.label FROM labels l WHERE l.request_id = predictions.request_id), "
        "label_ts = (SELECT l.ts FROM labels l WHERE l.request_id = predictions.request_id) "
        "WHERE EXISTS (SELECT 1 FROM labels l WHERE l.request_id = predictions.request_id)"
    )
    op.create_index(
        "ix_predictions_window", "predictions", ["model_name", "ts", "id", "label_ts", "prediction", "score", "label"]
    )
    op.drop_index("ix_predictions_model_name_ts", table_name="predictions")


def downgrade() -> None:
    op.create_index("ix_predictions_model_name_ts", "predictions", ["model_name", "ts"])
    op.drop_index("ix_predictions_window", table_name="predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("label_ts")
        batch.drop_column("label")
