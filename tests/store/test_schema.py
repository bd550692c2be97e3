from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from retrainer.errors import SchemaError, StoreError
from retrainer.store import LabelRecord, Store
from retrainer.store.migrate import VERSION_TABLE
from retrainer.store import labels as store_labels
from retrainer.store import predictions as store_predictions
from retrainer.store.schema import metadata

from .conftest import SPECS, T0, record

H = timedelta(hours=1)
MIN = timedelta(minutes=1)
HEAD = Store.head_revision()


def test_init_is_idempotent_and_reaches_head(store_url: str) -> None:
    s = Store.open(store_url)
    assert s.current_revision() is None
    with pytest.raises(SchemaError, match="retrainer store init"):
        s.check_schema()
    s.init()
    s.init()
    assert s.current_revision() == Store.head_revision() == HEAD
    s.check_schema()
    s.close()


def test_using_a_store_without_schema_says_to_init(tmp_path) -> None:
    s = Store.open(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(StoreError, match="retrainer store init"):
        s.unmatched_labels()
    assert not (tmp_path / "empty.db").exists()


def test_migrations_match_the_table_definitions(store: Store) -> None:
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE, "compare_type": False})
        diff = [d for d in compare_metadata(ctx, metadata) if "retrainer_alembic_version" not in str(d)]
    assert diff == []


def _old_ledger_row(s: Store, *, action: str, to_version: str, reason: str, from_version: str | None = None,
                    run_id: int | None = None) -> None:
    """A ledger row as the code before revision 0005 wrote it (no hash chain)."""
    with s.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO promotion_ledger (model_name, action, from_version, to_version, actor, reason, run_id, at) "
            "VALUES ('m', :a, :f, :t, 'ci', :r, :run, :at)"),
            {"a": action, "f": from_version, "t": to_version, "r": reason, "run": run_id, "at": T0.timestamp()})


@pytest.fixture
def old_code(monkeypatch: pytest.MonkeyPatch) -> None:
    """Write the way the code before revision 0003 did: no label copy on prediction rows (and,
    before revision 0008, no histogram counts)."""
    monkeypatch.setattr(store_predictions, "sync_predictions", lambda conn, ids: None)
    monkeypatch.setattr(store_predictions, "count_batch", lambda *args: None)
    monkeypatch.setattr(store_labels, "sync_predictions", lambda conn, ids: None)


def test_upgrade_from_first_revision_keeps_data(store_url: str, old_code: None) -> None:
    s = Store.open(store_url)
    s.upgrade("0001_initial")
    assert s.current_revision() == "0001_initial"
    with pytest.raises(SchemaError, match=f"'0001_initial'.*'{HEAD}'.*retrainer store upgrade"):
        s.check_schema()
    assert s.log_predictions("m", [record(i) for i in range(50)], SPECS).inserted == 50
    s.log_labels([LabelRecord("req-3", 1.0, T0)])
    run_id = s.start_run("m", flow_run_id="f1", reasons=["drift"], started_at=T0)
    _old_ledger_row(s, action="promote", to_version="1", reason="first", run_id=run_id)
    with s.engine.connect() as conn:
        assert "model_state" not in sa.inspect(conn).get_table_names()

    s.upgrade()
    assert s.current_revision() == HEAD
    s.check_schema()
    assert s.count_predictions("m", T0, T0.replace(year=2025)) == 50
    window = s.features_window("m", T0, T0.replace(year=2025), ["age", "city"])
    assert window.columns["age"].tolist() == [float(i) for i in range(50)]
    assert [e.to_version for e in s.ledger("m")] == ["1"]
    assert s.runs("m")[0].reasons == ["drift"]
    assert s.unmatched_labels() == 0
    assert s.champion("m") is None
    assert s.champion_cas("m", None, "1") is True
    s.close()


def test_upgrade_0002_to_0003_copies_the_latest_labels_onto_predictions(store_url: str, monkeypatch) -> None:
    s = Store.open(store_url)
    s.upgrade("0002_model_state")
    with monkeypatch.context() as m:  # the 0002 code: labels only in their own table
        m.setattr(store_predictions, "sync_predictions", lambda conn, ids: None)
        m.setattr(store_labels, "sync_predictions", lambda conn, ids: None)
        m.setattr(store_predictions, "count_batch", lambda *args: None)  # no histograms before 0008
        assert s.log_predictions("m", [record(i) for i in range(50)], SPECS).inserted == 50
        s.log_labels([LabelRecord("req-3", 1.0, T0 + H), LabelRecord("req-5", 0.0, T0 + H), LabelRecord("ghost", 1.0, T0)])
        s.log_labels([LabelRecord("req-5", 1.0, T0 + 3 * H), LabelRecord("req-3", 0.0, T0)])  # correction; stale retry
    with s.engine.connect() as conn:
        assert "label" not in {c["name"] for c in sa.inspect(conn).get_columns("predictions")}

    s.upgrade()
    assert s.current_revision() == HEAD
    s.check_schema()
    end = T0.replace(year=2025)
    lw = s.labelled_window("m", T0, end, as_of=end)
    assert lw.y_true.tolist() == [1.0, 1.0] and lw.y_pred.tolist() == [1.0, 1.0] and lw.n_predictions == 50
    assert lw.ts.tolist() == [(T0 + 3 * MIN).timestamp(), (T0 + 5 * MIN).timestamp()]
    assert s.labelled_window("m", T0, end, as_of=T0 + 2 * H).y_true.tolist() == [1.0]  # req-5's label is from 3h
    assert s.count_predictions("m", T0, end, labelled=True) == 2
    assert s.count_predictions("m", T0, end) == 50
    window = s.features_window("m", T0, end, ["age"])
    assert window.columns["age"].tolist() == [float(i) for i in range(50)]
    assert s.unmatched_labels() == 1
    # New code on the upgraded store: the early label is picked up by its late prediction.
    s.log_predictions("m", [record(60, request_id="ghost")], SPECS)
    assert s.count_predictions("m", T0, end, labelled=True) == 3
    assert s.unmatched_labels() == 0
    s.close()


def test_upgrade_0003_to_0004_keeps_shadow_rows_and_the_append_only_ledger(store_url: str) -> None:
    s = Store.open(store_url)
    s.upgrade("0003_prediction_labels")
    # Rows as the 0003 code wrote them: no champion latency, no error, the sample in the reason.
    with s.engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO shadow_comparisons (model_name, request_id, champion_version, shadow_version, "
            "champion_prediction, shadow_prediction, champion_score, shadow_score, latency_ms, ts) VALUES "
            "('m', 'r1', '1', '2', 1.0, 0.0, 0.7, 0.4, 3.5, :t), ('m', 'r2', '1', '2', 1.0, 1.0, 0.8, 0.9, 4.5, :t)"
        ), {"t": T0.timestamp()})
    _old_ledger_row(s, action="promote", to_version="1", reason="first")
    _old_ledger_row(s, action="shadow_start", from_version="1", to_version="2", reason="shadow 2 against champion 1 [sample=0.25]")
    with s.engine.connect() as conn:
        assert "details" not in {c["name"] for c in sa.inspect(conn).get_columns("promotion_ledger")}

    s.upgrade()
    assert s.current_revision() == HEAD
    s.check_schema()
    old = s.shadow_rows("m")
    assert [(r.request_id, r.shadow_prediction, r.shadow_score, r.latency_ms) for r in old] == [
        ("r1", 0.0, 0.4, 3.5), ("r2", 1.0, 0.9, 4.5)]
    assert all(r.champion_latency_ms is None and r.error is None for r in old)
    entries = s.ledger("m")
    assert [(e.action, e.to_version, e.details) for e in entries] == [("promote", "1", None), ("shadow_start", "2", None)]
    assert entries[1].reason.endswith("[sample=0.25]")
    # New rows: an error row without a prediction, champion latency, ledger details.
    from retrainer.store import ShadowRecord

    s.record_shadow([
        ShadowRecord("m", "r3", "1", "2", 1.0, None, T0, champion_latency_ms=1.5, latency_ms=2.0, error="boom"),
        ShadowRecord("m", "r4", "1", "2", 0.0, 0.0, T0, champion_score=0.1, shadow_score=0.2, champion_latency_ms=0.5),
    ])
    new = {r.request_id: r for r in s.shadow_rows("m")}
    assert new["r3"].shadow_prediction is None and new["r3"].error == "boom" and new["r3"].champion_latency_ms == 1.5
    assert new["r4"].shadow_prediction == 0.0 and new["r4"].error is None
    s.append_ledger("m", action="shadow_start", from_version="1", to_version="2", actor="cli", reason="again",
                    details={"sample": 0.5})
    assert s.ledger("m")[-1].details == {"sample": 0.5}
    # Still append-only after the upgrade, on both dialects.
    for statement in ("UPDATE promotion_ledger SET reason = 'x'", "DELETE FROM promotion_ledger"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), s.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert len(s.ledger("m")) == 3
    s.close()


def test_stats_mask_the_password() -> None:
    s = Store.open("postgresql://alice:s3cret@db.invalid:5432/x")
    assert "s3cret" not in repr(s)
    assert s.engine.url.drivername == "postgresql+psycopg"


def test_unsupported_backend_is_refused() -> None:
    from retrainer.errors import StoreError

    with pytest.raises(StoreError, match="supported: sqlite"):
        Store.open("mysql://x@y/z")


def test_sqlite_is_wal_with_busy_timeout_and_begin_immediate_for_writes(tmp_path) -> None:
    s = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    s.init()
    seen: list[str] = []
    # What SQLite itself runs (BEGIN goes straight to the driver, past SQLAlchemy's events).
    s.engine.dispose()
    sa.event.listen(s.engine, "connect", lambda dbapi_conn, _rec: dbapi_conn.set_trace_callback(seen.append))
    with s.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    seen.clear()
    s.log_predictions("m", [record(1)], SPECS)
    assert seen[0] == "BEGIN IMMEDIATE"
    seen.clear()
    s.count_predictions("m", T0, T0.replace(year=2025))
    assert seen[0] == "BEGIN"
    s.close()
