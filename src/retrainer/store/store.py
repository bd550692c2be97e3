"""The :class:`Store` facade: one object the rest of retrainer talks to.

Each method opens one transaction (writes: BEGIN IMMEDIATE on SQLite) and delegates to the
module that owns that table; validation runs before the transaction opens, so a rejected
batch never touches the database.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retrainer.config import FeatureSpec, RetrainerConfig
from retrainer.errors import InvalidIdentifierError
from retrainer.identifiers import validate_identifier
from retrainer.store.ledger_chain import ChainVerdict
from retrainer.store import ab, audit, compaction, histograms, labels, ledger, migrate, predictions, profiles, rebin, rollouts, runs, shadow, traffic
from retrainer.store.compaction import CompactionResult
from retrainer.store.rollouts import Rollout
from retrainer.store.traffic import TrafficMeasure
from retrainer.store.engine import create_store_engine, mask_url, read_tx, write_tx
from retrainer.store.records import (
    ABTest,
    Evaluation,
    FeatureWindow,
    LabelledWindow,
    LabelRecord,
    LabelWriteResult,
    LedgerEntry,
    PredictionRecord,
    RetrainRun,
    ShadowRecord,
    ShadowWindow,
    WriteResult,
    from_epoch,
)
from retrainer.store.schema import DATA_TABLES, metadata
from retrainer.store.schema import predictions as predictions_table
from retrainer.store.validation import (
    DEFAULT_LABEL_CLOCK_SKEW,
    batch_from_frame,
    batch_from_records,
    labels_from_records,
)
from retrainer.windows import HistogramWindow, LabelDelay, RetrainRecord


def _check_columns(columns: Sequence[str]) -> None:
    # Before any SQL runs: a name from config that is not a plain identifier never reaches a query.
    if isinstance(columns, str):
        raise InvalidIdentifierError(f"columns must be a list of feature names, not the string {columns!r}")
    for c in columns:
        validate_identifier(c, "feature column")


def _label_delays(conn: sa.Connection, models: Sequence[str], lookback: timedelta = timedelta(days=30)) -> dict[str, Any]:
    """Per model: its label delay over the ``lookback`` before its newest label arrival (the
    store's own recent past, so a backfilled or replayed log reads the same as a live one)."""
    p = predictions_table
    out: dict[str, Any] = {}
    for model in models:
        newest = conn.execute(sa.select(sa.func.max(p.c.label_ts)).where(p.c.model_name == model)).scalar_one()
        if newest is None:
            out[model] = None
            continue
        as_of = from_epoch(newest)
        assert as_of is not None
        out[model] = labels.label_delay(conn, model, as_of, lookback).to_dict()
    return out


class Store:
    """Inference log, labels, audit trail, runs, ledger, A/B, shadow and reference profiles."""

    def __init__(self, engine: Engine, *, max_batch: int = 50_000,
                 max_label_clock_skew: timedelta = DEFAULT_LABEL_CLOCK_SKEW) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.max_label_clock_skew = max_label_clock_skew
        self._known_ab_tests: set[int] = set()  # A/B test ids seen to exist (never deleted)
        # Frozen histogram bins already parsed (immutable per version), shared by this process's Stores of the URL.
        self._bins = histograms.shared_cache(engine.url.render_as_string(hide_password=True))

    @classmethod
    def open(cls, url: str, *, max_batch: int = 50_000,
             max_label_clock_skew: timedelta = DEFAULT_LABEL_CLOCK_SKEW) -> Store:
        """Connect (lazily) to ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
        return cls(create_store_engine(url), max_batch=max_batch, max_label_clock_skew=max_label_clock_skew)

    @classmethod
    def from_config(cls, cfg: RetrainerConfig) -> Store:
        """The configured store, its schema checked (a clear error says what to run); a context manager.

        ``with Store.from_config(cfg) as store:`` closes it however the block ends.
        """
        store = cls.open(cfg.store.url, max_batch=cfg.store.max_batch,
                         max_label_clock_skew=cfg.store.max_label_clock_skew)
        try:
            store.check_schema()
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def safe_url(self) -> str:
        """The URL with any password masked (for output)."""
        return mask_url(self.engine.url)

    def __repr__(self) -> str:
        return f"Store({mask_url(self.engine.url)!r})"

    # -- schema -----------------------------------------------------------------------------

    def init(self) -> None:
        """Create the schema, or bring it to head; safe to call every start-up."""
        migrate.upgrade(self.engine, "head")

    def upgrade(self, revision: str = "head") -> None:
        migrate.upgrade(self.engine, revision)

    def current_revision(self) -> str | None:
        return migrate.current_revision(self.engine)

    @staticmethod
    def head_revision() -> str:
        return migrate.head_revision()

    def check_schema(self) -> None:
        """Raise SchemaError (saying to run ``retrainer store upgrade``) unless at head."""
        migrate.check(self.engine)

    def stats(self) -> dict[str, Any]:
        revision = self.current_revision()
        out: dict[str, Any] = {
            "url": mask_url(self.engine.url),
            "dialect": self.engine.dialect.name,
            "revision": revision,
            "head": self.head_revision(),
        }
        if revision is None:
            return out
        p = predictions_table
        with read_tx(self.engine) as conn:
            present = set(sa.inspect(conn).get_table_names())
            out["rows"] = {
                name: int(conn.execute(sa.select(sa.func.count()).select_from(metadata.tables[name])).scalar_one())
                for name in DATA_TABLES
                if name in present
            }
            per_model = conn.execute(
                sa.select(p.c.model_name, sa.func.count(), sa.func.min(p.c.ts), sa.func.max(p.c.ts)).group_by(p.c.model_name)
            ).all()
            out["predictions_per_model"] = {
                m: {"count": int(n), "oldest": from_epoch(lo).isoformat(), "newest": from_epoch(hi).isoformat()}  # type: ignore[union-attr]
                for m, n, lo, hi in per_model
            }
            lo, hi = conn.execute(sa.select(sa.func.min(p.c.ts), sa.func.max(p.c.ts))).one()
            out["oldest_ts"] = None if lo is None else from_epoch(lo).isoformat()  # type: ignore[union-attr]
            out["newest_ts"] = None if hi is None else from_epoch(hi).isoformat()  # type: ignore[union-attr]
            out["unmatched_labels"] = labels.unmatched_labels(conn)
            out["label_delay"] = _label_delays(conn, [m for m, *_ in per_model])
        return out

    # -- inference log ----------------------------------------------------------------------

    def log_predictions(
        self, model_name: str, records: Sequence[PredictionRecord], features: Sequence[FeatureSpec],
        *, assignments: Mapping[int, Sequence[tuple[str, str]]] | None = None,
    ) -> WriteResult:
        """Store a batch; request ids already stored are skipped (counted as duplicates).

        ``assignments`` ({ab_test_id: [(unit_id, arm), ...]}) are recorded in the same
        transaction (the group commit's one transaction per group); ``new_assignments`` counts
        the units new to their test."""
        batch = batch_from_records(model_name, records, features, self.max_batch)
        if not len(batch) and not assignments:
            return WriteResult(0, 0)
        with write_tx(self.engine) as conn:
            result = predictions.write_batch(conn, batch, self._known_ab_tests, self._bins)
            if not assignments:
                return result
            new = sum(ab.record_assignments(conn, test_id, pairs, None) for test_id, pairs in assignments.items())
            return dataclasses.replace(result, new_assignments=new)

    def stored_answers(self, model_name: str, request_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The stored prediction, score, version and arm of each request id that is in the log."""
        with read_tx(self.engine) as conn:
            return predictions.stored_answers(conn, model_name, request_ids)

    def log_prediction_frame(self, model_name: str, frame: pd.DataFrame, features: Sequence[FeatureSpec]) -> WriteResult:
        """Same as :meth:`log_predictions` for a DataFrame with columns request_id, ts,
        prediction, [score, model_version, unit_id, arm, ab_test_id] and the features."""
        batch = batch_from_frame(model_name, frame, features, self.max_batch)
        if not len(batch):
            return WriteResult(0, 0)
        with write_tx(self.engine) as conn:
            return predictions.write_batch(conn, batch, self._known_ab_tests, self._bins)

    def log_labels(self, records: Sequence[LabelRecord], *, received_at: datetime | None = None) -> LabelWriteResult:
        """Upsert labels (latest label time wins); unknown request ids are kept and listed.

        A label time after ``received_at`` (default now; a replay passes its clock) is stored as
        ``received_at``, or refused beyond ``max_label_clock_skew``; one before its stored
        prediction's time is stored as that time (listed in ``clamped_request_ids``)."""
        batch = labels_from_records(records, self.max_batch, received_at=received_at,
                                    max_skew=self.max_label_clock_skew)
        if not batch.request_id:
            return LabelWriteResult(0)
        with write_tx(self.engine) as conn:
            return labels.write_labels(conn, batch)

    def features_window(self, model_name: str, start: datetime, end: datetime, columns: Sequence[str]) -> FeatureWindow:
        """Feature columns of predictions with start <= ts < end, ordered by ts."""
        _check_columns(columns)
        with read_tx(self.engine) as conn:
            return predictions.features_window(conn, model_name, start, end, columns)

    def feature_histograms(
        self, model_name: str, version: str, start: datetime, end: datetime, columns: Sequence[str] | None = None
    ) -> HistogramWindow | None:
        """Counts kept at ingest on ``version``'s frozen bins over the whole hours inside
        ``[start, end)`` (``HistogramSource``); None when there are none covering it."""
        with read_tx(self.engine) as conn:
            return histograms.window_histograms(conn, model_name, version, start.timestamp(), end.timestamp(),
                                                columns, self._bins)

    def fleet_histograms(self, champions: Mapping[str, str], start: datetime, end: datetime) -> dict[str, HistogramWindow | None]:
        """:meth:`feature_histograms` of many models at once (model -> champion version), in a
        few queries: the fleet check's read."""
        with read_tx(self.engine) as conn:
            return histograms.window_histograms_many(conn, champions, start.timestamp(), end.timestamp(), self._bins)

    def champions(self, models: Sequence[str] | None = None) -> dict[str, str]:
        """model -> champion version, of ``models`` (default: every model that has one)."""
        from retrainer.store.schema import model_state

        q = sa.select(model_state.c.model_name, model_state.c.champion_version).where(
            model_state.c.champion_version.is_not(None))
        with read_tx(self.engine) as conn:
            if models is None:
                return {m: v for m, v in conn.execute(q)}
            out: dict[str, str] = {}
            names = list(models)
            for i in range(0, len(names), 400):
                out.update({m: v for m, v in conn.execute(q.where(model_state.c.model_name.in_(names[i: i + 400])))})
            return out

    def last_retrains(self, models: Sequence[str]) -> dict[str, datetime | None]:
        """:meth:`last_retrain_at` of many models in one query per 400."""
        with read_tx(self.engine) as conn:
            return runs.last_retrains(conn, list(models))

    def record_evaluations_many(self, checks: Sequence[tuple[str, datetime, Sequence[Mapping[str, Any]]]]) -> int:
        """:meth:`record_evaluations` of many checks (model, evaluated_at, rows) in one transaction."""
        with write_tx(self.engine) as conn:
            return sum(audit.record(conn, model, at, rows) for model, at, rows in checks)

    def ensure_histograms(self, model_name: str, version: str, *, since: datetime | None = None) -> histograms.CountingRef | None:
        """``version``'s frozen histogram bins, first frozen and counted over the raw chunks once
        (store/rebin.py) when it has none yet; None when it has no reference profile to bin on."""
        with read_tx(self.engine) as conn:
            ref = histograms.counting_ref(conn, model_name, version, self._bins)
            if ref is not None:
                return ref
            profile = profiles.load(conn, model_name, version)
        if profile is None:
            return None
        with write_tx(self.engine) as conn:
            ref = histograms.counting_ref(conn, model_name, version, None)
            if ref is None:  # else another process got there first
                ref = rebin.rebin(conn, model_name, version, profile, since=None if since is None else since.timestamp())
        return ref

    def labelled_window(
        self, model_name: str, start: datetime, end: datetime, *, as_of: datetime, model_version: str | None = None
    ) -> LabelledWindow:
        """Predictions of [start, end) whose label was known at ``as_of`` (label ts <= as_of)."""
        with read_tx(self.engine) as conn:
            return predictions.labelled_window(conn, model_name, start, end, as_of, model_version)

    def scored_window(
        self, model_name: str, start: datetime, end: datetime, *, as_of: datetime, model_version: str | None = None
    ) -> LabelledWindow:
        """Every prediction of [start, end), labelled or not (``ScoredWindowSource``): label NaN
        where it was not known at ``as_of``."""
        with read_tx(self.engine) as conn:
            return predictions.scored_window(conn, model_name, start, end, as_of, model_version)

    def labelled_frame(
        self, model_name: str, start: datetime, end: datetime, *, as_of: datetime, columns: Sequence[str]
    ) -> pd.DataFrame:
        """Training rows from the inference log: the features asked for + prediction, label, ts."""
        _check_columns(columns)
        with read_tx(self.engine) as conn:
            return predictions.labelled_frame(conn, model_name, start, end, as_of, columns)

    def count_predictions(
        self, model_name: str, since: datetime, until: datetime, *, labelled: bool = False, as_of: datetime | None = None
    ) -> int:
        with read_tx(self.engine) as conn:
            return predictions.count_predictions(conn, model_name, since, until, labelled=labelled, as_of=as_of)

    def label_delay(
        self, model_name: str, *, as_of: datetime, lookback: timedelta = timedelta(days=30)
    ) -> LabelDelay:
        """How late the model's labels come, as seen at ``as_of`` (``LabelDelaySource``): p50/p95 of
        (label time - prediction time) over the labels that arrived in the ``lookback``, and the
        share of the lookback's predictions labelled by then."""
        with read_tx(self.engine) as conn:
            return labels.label_delay(conn, model_name, as_of, lookback)

    def traffic(
        self, model_name: str, *, as_of: datetime, lookback: timedelta = timedelta(days=14),
        shadow_version: str | None = None,
    ) -> TrafficMeasure:
        """Requests a day, label rate, label delay, champion accuracy and shadow disagreement over the
        ``lookback`` before ``as_of``: what the rollout plan forecasts from (:mod:`retrainer.store.traffic`)."""
        with read_tx(self.engine) as conn:
            return traffic.measure(conn, model_name, as_of, lookback, shadow_version)

    def compact_chunks(
        self, model_name: str, *, before: datetime | None = None, target_rows: int = 50_000
    ) -> CompactionResult:
        """Merge the model's small feature chunks (ts_max < ``before``; all when None) into
        chunks of about ``target_rows`` rows. Window reads return the same data before and
        after; idempotent; safe next to ingest and next to another compactor (one
        transaction per merged chunk). See docs/store-layout.md, "Compaction"."""
        return compaction.compact_chunks(self.engine, model_name, before=before, target_rows=target_rows)

    def chunk_models(self) -> list[str]:
        """Models that have feature chunks (what ``retrainer store compact`` walks by default)."""
        from retrainer.store.schema import feature_chunks

        with read_tx(self.engine) as conn:
            return list(conn.execute(sa.select(feature_chunks.c.model_name).distinct().order_by(feature_chunks.c.model_name)).scalars())

    def count_chunks(self, model_name: str) -> int:
        from retrainer.store.schema import feature_chunks

        with read_tx(self.engine) as conn:
            q = sa.select(sa.func.count()).select_from(feature_chunks).where(feature_chunks.c.model_name == model_name)
            return int(conn.execute(q).scalar_one())

    def unmatched_labels(self) -> int:
        with read_tx(self.engine) as conn:
            return labels.unmatched_labels(conn)

    # -- audit, runs, ledger ----------------------------------------------------------------

    def record_evaluations(self, model_name: str, evaluated_at: datetime, rows: Sequence[Mapping[str, Any]]) -> int:
        with write_tx(self.engine) as conn:
            return audit.record(conn, model_name, evaluated_at, rows)

    def evaluations(
        self,
        model_name: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        role: str | None = None,
        limit: int | None = None,
    ) -> list[Evaluation]:
        """Oldest first; ``role`` keeps rows with that ``evidence["role"]``, ``limit`` the newest N."""
        with read_tx(self.engine) as conn:
            return audit.read(conn, model_name, since, until, role=role, limit=limit)

    def start_run(self, model_name: str, *, flow_run_id: str | None, reasons: list[str], started_at: datetime) -> int:
        with write_tx(self.engine) as conn:
            return runs.start(conn, model_name, flow_run_id=flow_run_id, reasons=reasons, started_at=started_at)

    def finish_run(
        self,
        run_id: int,
        *,
        status: str,
        metrics: dict[str, Any] | None,
        version: str | None,
        error: str | None,
        finished_at: datetime,
    ) -> None:
        with write_tx(self.engine) as conn:
            runs.finish(conn, run_id, status=status, metrics=metrics, version=version, error=error, finished_at=finished_at)

    def runs(self, model_name: str, limit: int = 20) -> list[RetrainRun]:
        """Most recent first."""
        with read_tx(self.engine) as conn:
            return runs.read(conn, model_name, limit)

    def run(self, run_id: int) -> RetrainRun | None:
        with read_tx(self.engine) as conn:
            return runs.get(conn, run_id)

    def last_retrain_at(self, model_name: str) -> datetime | None:
        """``finished_at`` of the latest run that trained a model (success, no_improvement or superseded)."""
        with read_tx(self.engine) as conn:
            return runs.last_retrain(conn, model_name)

    def offline_delta(self, model_name: str, version: str) -> tuple[float, float] | None:
        """(Δ_off, se) measured on the holdout when ``version`` was trained: candidate - champion on
        the gate metric; None when none was recorded (first model, or a version registered elsewhere)."""
        with read_tx(self.engine) as conn:
            return runs.offline_delta(conn, model_name, version)

    def offline_record(self, model_name: str, version: str) -> dict[str, Any] | None:
        """The whole holdout comparison behind :meth:`offline_delta` (metric, mean, se, n,
        interval_95, disagreement), or None."""
        with read_tx(self.engine) as conn:
            return runs.offline_record(conn, model_name, version)

    def latest_offline_version(self, model_name: str) -> str | None:
        """The newest version a retrain run registered with a usable offline difference."""
        with read_tx(self.engine) as conn:
            return runs.latest_offline_version(conn, model_name)

    def offline_online_history(self, model_name: str) -> list[tuple[float, float]]:
        """(offline Δ, online Δ) of every decided rollout of the model, oldest first (fit_prior's history)."""
        with read_tx(self.engine) as conn:
            return rollouts.offline_online_history(conn, model_name)

    def retrain_history(self, model_name: str, *, as_of: datetime, limit: int = 10) -> list[RetrainRecord]:
        """Runs that trained a model and had finished by ``as_of``, most recent first: when, the
        candidate's holdout metrics, the measured duration (``RetrainHistorySource``)."""
        with read_tx(self.engine) as conn:
            return runs.history(conn, model_name, as_of, limit)

    def append_ledger(
        self,
        model_name: str,
        *,
        action: str,
        from_version: str | None,
        to_version: str | None,
        actor: str,
        reason: str,
        run_id: int | None = None,
        at: datetime | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one ledger row; ``details`` is a JSON-serialisable mapping (e.g. a shadow's sample)."""
        with write_tx(self.engine) as conn:
            return ledger.append(
                conn,
                model_name,
                action=action,
                from_version=from_version,
                to_version=to_version,
                actor=actor,
                reason=reason,
                run_id=run_id,
                at=at,
                details=details,
            )

    def ledger(self, model_name: str) -> list[LedgerEntry]:
        """Oldest first."""
        with read_tx(self.engine) as conn:
            return ledger.read(conn, model_name)

    def verify_ledger(self) -> ChainVerdict:
        """Recompute the ledger's hash chain; the verdict names the first row that does not match."""
        with read_tx(self.engine) as conn:
            return ledger.verify(conn)

    def champion_cas(self, model_name: str, expected: str | None, new: str) -> bool:
        with write_tx(self.engine) as conn:
            return ledger.champion_cas(conn, model_name, expected, new)

    def swap_champion(
        self,
        model_name: str,
        *,
        expected: str | None,
        new: str,
        action: str,
        actor: str,
        reason: str,
        run_id: int | None = None,
        at: datetime | None = None,
    ) -> int | None:
        """Compare-and-set the champion AND append its ledger row in one transaction.

        Returns the ledger row id, or None when the champion was not ``expected`` (nothing
        written). One transaction means no crash can leave a moved champion without its row.
        """
        with write_tx(self.engine) as conn:
            if not ledger.champion_cas(conn, model_name, expected, new):
                return None
            return ledger.append(
                conn, model_name, action=action, from_version=expected, to_version=new,
                actor=actor, reason=reason, run_id=run_id, at=at,
            )

    def champion(self, model_name: str) -> str | None:
        with read_tx(self.engine) as conn:
            return ledger.champion(conn, model_name)

    # -- reference profiles, A/B, shadow ----------------------------------------------------

    def save_reference_profile(self, model_name: str, version: str, profile: dict[str, Any]) -> None:
        with write_tx(self.engine) as conn:
            profiles.save(conn, model_name, version, profile)

    def reference_profile(self, model_name: str, version: str) -> dict[str, Any] | None:
        with read_tx(self.engine) as conn:
            return profiles.load(conn, model_name, version)

    def start_ab_test(
        self,
        model_name: str,
        *,
        champion_version: str,
        challenger_version: str,
        split: float,
        salt: str,
        config: dict[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> int:
        """Raises RolloutError when a test is already running for the model."""
        with write_tx(self.engine) as conn:
            return ab.start(
                conn,
                model_name,
                champion_version=champion_version,
                challenger_version=challenger_version,
                split=split,
                salt=salt,
                config=config,
                started_at=started_at,
            )

    def active_ab_test(self, model_name: str) -> ABTest | None:
        with read_tx(self.engine) as conn:
            return ab.active(conn, model_name)

    def ab_test(self, ab_test_id: int) -> ABTest | None:
        with read_tx(self.engine) as conn:
            return ab.get(conn, ab_test_id)

    def ab_tests(self, model_name: str) -> list[ABTest]:
        with read_tx(self.engine) as conn:
            return ab.history(conn, model_name)

    def stop_ab_test(
        self, ab_test_id: int, *, reason: str, result: dict[str, Any] | None = None, stopped_at: datetime | None = None
    ) -> None:
        with write_tx(self.engine) as conn:
            ab.stop(conn, ab_test_id, reason=reason, result=result, stopped_at=stopped_at)

    def record_assignments(
        self, ab_test_id: int, pairs: Iterable[tuple[str, str]], *, assigned_at: datetime | None = None
    ) -> int:
        """(unit_id, arm) pairs; returns how many units were new to the test."""
        with write_tx(self.engine) as conn:
            return ab.record_assignments(conn, ab_test_id, pairs, assigned_at)

    def assignment_counts(self, ab_test_id: int) -> dict[str, int]:
        with read_tx(self.engine) as conn:
            return ab.assignment_counts(conn, ab_test_id)

    def ab_arm_rows(self, test: ABTest, *, until: datetime, as_of: datetime) -> list[tuple[str, str | None, float, float]]:
        """(arm, unit_id, prediction, label) of A/B test ``test``'s labelled predictions (label known
        at ``as_of``) made before ``until``, by test id and arm."""
        with read_tx(self.engine) as conn:
            return ab.arm_rows(conn, test, until, as_of)

    def record_shadow(self, rows: Sequence[ShadowRecord]) -> int:
        with write_tx(self.engine) as conn:
            return shadow.record(conn, rows)

    def shadow_rows(
        self,
        model_name: str,
        since: datetime | None = None,
        until: datetime | None = None,
        *,
        shadow_version: str | None = None,
    ) -> list[ShadowRecord]:
        with read_tx(self.engine) as conn:
            return shadow.read(conn, model_name, since, until, shadow_version)

    def shadow_window(
        self, model_name: str, *, shadow_version: str, since: datetime, until: datetime, as_of: datetime,
        champion_version: str | None = None,
    ) -> ShadowWindow:
        """``shadow_version``'s comparisons in [since, until) as columns, with labels known at ``as_of``."""
        with read_tx(self.engine) as conn:
            return shadow.window(conn, model_name, shadow_version, since, until, as_of, champion_version)

    # -- rollouts (the rollout flow's state) -------------------------------------------------

    def create_rollout(
        self, model_name: str, *, version: str, champion_version: str | None, mode: str, stage: str, at: datetime,
        actor: str, reason: str, run_id: int | None = None, details: Mapping[str, Any] | None = None,
    ) -> Rollout:
        """A new rollout, ``staged`` (RolloutError if one is in flight) or ``queued``, with its ledger row."""
        with write_tx(self.engine) as conn:
            return rollouts.create(conn, model_name, version=version, champion_version=champion_version, mode=mode,
                                   stage=stage, at=at, actor=actor, reason=reason, run_id=run_id, details=details)

    def transition_rollout(
        self, rollout_id: int, *, expected: str, new: str, at: datetime, action: str, actor: str, reason: str,
        decision: str, evidence: Mapping[str, Any] | None = None, champion_version: str | None = None,
        ab_test_id: int | None = None, set_champion: bool = False,
    ) -> Rollout | None:
        """Compare-and-set the rollout's stage and append its ledger row in one transaction;
        None (nothing written) when it was no longer in ``expected``."""
        with write_tx(self.engine) as conn:
            return rollouts.transition(conn, rollout_id, expected=expected, new=new, at=at, action=action,
                                       actor=actor, reason=reason, decision=decision, evidence=evidence,
                                       champion_version=champion_version, ab_test_id=ab_test_id,
                                       set_champion=set_champion)

    def note_rollout(self, rollout_id: int, *, at: datetime, decision: str, explanation: str,
                     evidence: Mapping[str, Any] | None = None) -> None:
        with write_tx(self.engine) as conn:
            rollouts.note(conn, rollout_id, at=at, decision=decision, explanation=explanation, evidence=evidence)

    def rollout(self, rollout_id: int) -> Rollout | None:
        with read_tx(self.engine) as conn:
            return rollouts.get(conn, rollout_id)

    def rollout_in_flight(self, model_name: str) -> Rollout | None:
        with read_tx(self.engine) as conn:
            return rollouts.in_flight(conn, model_name)

    def rollouts(self, model_name: str, *, stages: Sequence[str] | None = None) -> list[Rollout]:
        """Oldest first; ``stages`` keeps only rollouts in one of them."""
        with read_tx(self.engine) as conn:
            return rollouts.history(conn, model_name, stages)

    def rollout_models(self) -> list[str]:
        with read_tx(self.engine) as conn:
            return rollouts.models(conn)

    def known_labels(self, request_ids: Sequence[str], *, as_of: datetime) -> dict[str, float]:
        """Labels of these request ids known at ``as_of`` (label time <= as_of)."""
        with read_tx(self.engine) as conn:
            return rollouts.known_labels(conn, request_ids, as_of)

