"""feature_histograms: counts on the champion's frozen bins, kept at ingest.

Revision ID: 0008_feature_histograms
Revises: 0007_rollouts
Create Date: 2026-12-01

The writer counts every logged feature value on the current champion's frozen bins
(``retrainer.stats.histogram``) per time bucket, in the same transaction as the rows, so a
drift check sums a few hundred small rows instead of rescanning its window. ``histogram_refs``
holds the bins of each champion version counted on and from when its counts are complete.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008_feature_histograms"
down_revision = "0007_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(JSONB(), "postgresql")
    op.create_table(
        "histogram_refs",
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("bins", json, nullable=False),
        sa.Column("bucket_seconds", sa.Double, nullable=False),
        sa.Column("complete_from", sa.Double, nullable=False),
        sa.Column("registered_at", sa.Double),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.PrimaryKeyConstraint("model_name", "version", name="pk_histogram_refs"),
    )
    op.create_table(
        "feature_histograms",
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("version", sa.String(255), nullable=False),
        sa.Column("bucket_start", sa.Double, nullable=False),
        sa.Column("feature", sa.String(255), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("nulls", sa.BigInteger, nullable=False),
        sa.Column("sum", sa.Double, nullable=False),
        sa.Column("sum_sq", sa.Double, nullable=False),
        sa.Column("min", sa.Double),
        sa.Column("max", sa.Double),
        sa.Column("counts", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("model_name", "version", "bucket_start", "feature", name="pk_feature_histograms"),
        sqlite_with_rowid=False,  # the key is the only access path: one b-tree per upsert, not two
    )


def downgrade() -> None:
    op.drop_table("feature_histograms")
    op.drop_table("histogram_refs")
