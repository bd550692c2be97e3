"""An index on (model_name, label_ts, ts): the label delay of a model is one range scan.

Revision ID: 0006_label_arrival
Revises: 0005_ledger_chain
Create Date: 2026-11-29

The label delay (label time - prediction time) is measured over the labels that *arrived*
in a recent period (``store.labels.label_delay``): selecting by prediction time instead would
miss the slow labels of recent predictions and understate the delay. The window index leads
with ``ts``, so that selection scanned every prediction of the model; this one serves it as
a covering range scan (no table lookups).
"""

from __future__ import annotations

from alembic import op

revision = "0006_label_arrival"
down_revision = "0005_ledger_chain"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_predictions_label_arrival", "predictions", ["model_name", "label_ts", "ts"])


def downgrade() -> None:
    op.drop_index("ix_predictions_label_arrival", table_name="predictions")
