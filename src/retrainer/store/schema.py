"""Tables of the store, as SQLAlchemy Core metadata (the migrations are the source of truth
for existing databases; a test checks the two agree).

Every time is a float of epoch seconds UTC: one convention on SQLite and PostgreSQL, cheap to
index and compare, and free of time-zone ambiguity. The repository functions convert to and
from aware ``datetime``.

Feature values are not stored per row: ``feature_chunks`` holds one row per ingest batch and
``feature_chunk_columns`` one blob per (batch, feature). See docs/store-layout.md for why.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-assigns ids for a column declared exactly INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")
Name = sa.String(255)
Time = sa.Double  # epoch seconds UTC

ab_tests = sa.Table(
    "ab_tests",
    metadata,
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
    sa.CheckConstraint("status IN ('running', 'stopped')", name="status"),
    sa.CheckConstraint("split > 0 AND split < 1", name="split"),
)
# At most one running test per model, enforced by the database rather than by hope.
sa.Index(
    "ux_ab_tests_running",
    ab_tests.c.model_name,
    unique=True,
    sqlite_where=ab_tests.c.status == "running",
    postgresql_where=ab_tests.c.status == "running",
)

ab_assignments = sa.Table(
    "ab_assignments",
    metadata,
    sa.Column("ab_test_id", BigId, sa.ForeignKey("ab_tests.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("unit_id", Name, primary_key=True),
    sa.Column("arm", sa.String(32), nullable=False),
    sa.Column("assigned_at", Time, nullable=False),
)

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("request_id", Name, nullable=False, unique=True),
    sa.Column("model_name", Name, nullable=False),
    sa.Column("model_version", Name),
    sa.Column("unit_id", Name),
    sa.Column("arm", sa.String(32)),
    sa.Column("ts", Time, nullable=False),
    sa.Column("prediction", sa.Double, nullable=False),
    sa.Column("score", sa.Double),
    sa.Column("ab_test_id", BigId, sa.ForeignKey("ab_tests.id")),
    # Revision 3: the latest label of this request id and its label time, copied from
    # ``labels`` (which stays the source of truth) so a labelled-window read is one index
    # range scan instead of a join on text keys. NULL = no label yet.
    sa.Column("label", sa.Double),
    sa.Column("label_ts", Time),
    # Covers the window reads (count, labelled rows ordered by ts, id): no table lookups.
    sa.Index("ix_predictions_window", "model_name", "ts", "id", "label_ts", "prediction", "score", "label"),
    # Revision 6: labels by arrival time, for the label delay (store.labels.label_delay).
    sa.Index("ix_predictions_label_arrival", "model_name", "label_ts", "ts"),
)

feature_chunks = sa.Table(
    "feature_chunks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("model_name", Name, nullable=False),
    sa.Column("ts_min", Time, nullable=False),
    sa.Column("ts_max", Time, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("prediction_ids", sa.LargeBinary, nullable=False),  # int64 little-endian
    sa.Column("ts", sa.LargeBinary, nullable=False),  # float64 little-endian
    sa.Column("created_at", Time, nullable=False),
    sa.Index("ix_feature_chunks_model_name_ts_max", "model_name", "ts_max"),
)

feature_chunk_columns = sa.Table(
    "feature_chunk_columns",
    metadata,
    sa.Column("chunk_id", BigId, sa.ForeignKey("feature_chunks.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("feature", Name, primary_key=True),
    sa.Column("encoding", sa.String(16), nullable=False),  # 'f8' | 'json'
    sa.Column("data", sa.LargeBinary, nullable=False),
)

labels = sa.Table(
    "labels",
    metadata,
    # No foreign key: labels may arrive for predictions this store has not (yet) seen.
    sa.Column("request_id", Name, primary_key=True),
    sa.Column("label", sa.Double, nullable=False),
    sa.Column("ts", Time, nullable=False),  # when the label became known
    sa.Column("received_at", Time, nullable=False),
    sa.Index("ix_labels_ts", "ts"),
)

trigger_evaluations = sa.Table(
    "trigger_evaluations",
    metadata,
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
    sa.Index("ix_trigger_evaluations_model_name_evaluated_at", "model_name", "evaluated_at"),
)

retrain_runs = sa.Table(
    "retrain_runs",
    metadata,
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
    sa.Index("ix_retrain_runs_model_name_started_at", "model_name", "started_at"),
)

promotion_ledger = sa.Table(
    "promotion_ledger",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("model_name", Name, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("from_version", Name),
    sa.Column("to_version", Name),
    sa.Column("actor", Name, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("run_id", BigId, sa.ForeignKey("retrain_runs.id")),
    sa.Column("at", Time, nullable=False),
    # Revision 4: structured facts of the step, e.g. {"sample": 0.25} of a shadow_start.
    sa.Column("details", Json),
    # Revision 5: the hash chain (store/ledger_chain.py); NOT NULL is enforced by the insert guard.
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("row_hash", sa.String(64)),
    sa.Index("ix_promotion_ledger_model_name", "model_name"),
)

shadow_comparisons = sa.Table(
    "shadow_comparisons",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("model_name", Name, nullable=False),
    sa.Column("request_id", Name, nullable=False),
    sa.Column("champion_version", Name, nullable=False),
    sa.Column("shadow_version", Name, nullable=False),
    sa.Column("champion_prediction", sa.Double, nullable=False),
    # Revision 4: NULL when the shadow model failed on the request (``error`` says why).
    sa.Column("shadow_prediction", sa.Double),
    sa.Column("champion_score", sa.Double),
    sa.Column("shadow_score", sa.Double),
    sa.Column("latency_ms", sa.Double),  # the shadow call (batched: this request's share of the batch)
    sa.Column("ts", Time, nullable=False),
    sa.Column("champion_latency_ms", sa.Double),  # revision 4
    sa.Column("error", sa.Text),  # revision 4
    sa.Index("ix_shadow_comparisons_model_name_ts", "model_name", "ts"),
)

reference_profiles = sa.Table(
    "reference_profiles",
    metadata,
    sa.Column("model_name", Name, primary_key=True),
    sa.Column("version", Name, primary_key=True),
    sa.Column("profile", Json, nullable=False),
    sa.Column("created_at", Time, nullable=False),
)

# Revision 2: the champion pointer for compare-and-set promotion.
model_state = sa.Table(
    "model_state",
    metadata,
    sa.Column("model_name", Name, primary_key=True),
    sa.Column("champion_version", Name),
    sa.Column("updated_at", Time, nullable=False),
)

# Revision 7: one row per challenger on its way to traffic (the rollout flow's state).
ROLLOUT_STAGES = ("queued", "staged", "shadow", "ab", "champion", "rejected", "rolled_back", "aborted")
IN_FLIGHT_STAGES = ("staged", "shadow", "ab")
rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("model_name", Name, nullable=False),
    sa.Column("version", Name, nullable=False),  # the challenger
    sa.Column("champion_version", Name),  # the champion it challenges (set again when a queued one starts)
    sa.Column("mode", sa.String(16), nullable=False),  # shadow | ab: where it entered
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("created_at", Time, nullable=False),
    sa.Column("stage_started_at", Time, nullable=False),
    sa.Column("updated_at", Time, nullable=False),
    sa.Column("ab_test_id", BigId, sa.ForeignKey("ab_tests.id")),
    sa.Column("run_id", BigId, sa.ForeignKey("retrain_runs.id")),
    sa.Column("decision", sa.String(32)),  # the last advance's word: wait, advanced, rejected, ...
    sa.Column("explanation", sa.Text),  # ... and its sentence
    sa.Column("evidence", Json),
    sa.Column("stages", Json, nullable=False),  # [{"stage": ..., "at": epoch}], oldest first
    sa.CheckConstraint("stage IN (" + ", ".join(f"'{s}'" for s in ROLLOUT_STAGES) + ")", name="stage"),
    sa.Index("ix_rollouts_model_name_stage", "model_name", "stage"),
)
# One rollout in flight per model, enforced by the database (as for running A/B tests).
sa.Index(
    "ux_rollouts_in_flight",
    rollouts.c.model_name,
    unique=True,
    sqlite_where=rollouts.c.stage.in_(IN_FLIGHT_STAGES),
    postgresql_where=rollouts.c.stage.in_(IN_FLIGHT_STAGES),
)

# Revision 8: ingest-time histograms (store/histograms.py). One row per champion version whose
# frozen bins the writer counts on; ``complete_from``: every logged row with ts >= it is counted.
histogram_refs = sa.Table(
    "histogram_refs",
    metadata,
    sa.Column("model_name", Name, primary_key=True),
    sa.Column("version", Name, primary_key=True),
    sa.Column("bins", Json, nullable=False),  # {feature: FrozenBins.to_dict()}
    sa.Column("bucket_seconds", sa.Double, nullable=False),
    sa.Column("complete_from", Time, nullable=False),
    sa.Column("registered_at", Time),  # the profile's registered_at, so a check need not load the profile
    sa.Column("created_at", Time, nullable=False),
)

# Counts per (model, champion version, time bucket, feature) on that version's frozen bins.
feature_histograms = sa.Table(
    "feature_histograms",
    metadata,
    sa.Column("model_name", Name, primary_key=True),
    sa.Column("version", Name, primary_key=True),
    sa.Column("bucket_start", Time, primary_key=True),
    sa.Column("feature", Name, primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("nulls", sa.BigInteger, nullable=False),
    sa.Column("sum", sa.Double, nullable=False),
    sa.Column("sum_sq", sa.Double, nullable=False),
    sa.Column("min", sa.Double),
    sa.Column("max", sa.Double),
    sa.Column("counts", sa.LargeBinary, nullable=False),  # int64 little-endian, one per bin
    # The primary key is the only access path: on SQLite store the rows in it (no rowid b-tree
    # beside it), so each upsert writes one b-tree instead of two.
    sqlite_with_rowid=False,
)

DATA_TABLES = (
    "predictions",
    "feature_chunks",
    "feature_chunk_columns",
    "labels",
    "trigger_evaluations",
    "retrain_runs",
    "promotion_ledger",
    "ab_tests",
    "ab_assignments",
    "shadow_comparisons",
    "reference_profiles",
    "model_state",
    "rollouts",
    "histogram_refs",
    "feature_histograms",
)
