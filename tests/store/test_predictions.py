from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from retrainer.config import FeatureSpec
from retrainer.store import PredictionRecord, Store

from .conftest import SPECS, T0, record

DAY = timedelta(days=1)


def test_resending_a_request_id_does_not_duplicate(store: Store) -> None:
    assert store.log_predictions("m", [record(i) for i in range(10)], SPECS).inserted == 10
    again = store.log_predictions("m", [record(i) for i in range(5, 15)], SPECS)
    assert (again.inserted, again.duplicates) == (5, 5)
    inside = store.log_predictions("m", [record(20), record(20, prediction=0.5), record(21)], SPECS)
    assert (inside.inserted, inside.duplicates) == (2, 1)
    assert store.count_predictions("m", T0, T0 + DAY) == 17
    window = store.features_window("m", T0, T0 + DAY, ["age"])
    assert window.columns["age"].tolist() == [float(i) for i in [*range(15), 20, 21]]  # features once each
    assert len(set(window.prediction_ids.tolist())) == 17


def test_window_returns_exactly_the_rows_and_columns_asked(store: Store) -> None:
    store.log_predictions("m", [record(i) for i in range(0, 60)], SPECS)  # ts = T0 + i minutes
    store.log_predictions("m", [record(i) for i in range(60, 120)], SPECS)
    store.log_predictions("other", [record(i, request_id=f"o{i}") for i in range(0, 120)], SPECS)
    w = store.features_window("m", T0 + timedelta(minutes=30), T0 + timedelta(minutes=90), ["city", "age"])
    assert set(w.columns) == {"city", "age"}
    assert len(w) == 60  # start inclusive (30), end exclusive (90)
    assert w.columns["age"].tolist() == [float(i) for i in range(30, 90)]
    assert w.columns["city"].tolist() == [["a", "b", "c"][i % 3] for i in range(30, 90)]
    assert w.columns["age"].dtype == np.float64 and w.columns["city"].dtype == object
    np.testing.assert_allclose(w.ts, [(T0 + timedelta(minutes=i)).timestamp() for i in range(30, 90)])
    assert len(store.features_window("m", T0 - DAY, T0, ["age"])) == 0
    only_ts = store.features_window("m", T0, T0 + DAY, [])
    assert len(only_ts) == 120 and only_ts.columns == {}


def test_window_is_sorted_by_time_across_out_of_order_batches(store: Store) -> None:
    store.log_predictions("m", [record(i) for i in range(50, 100)], SPECS)
    store.log_predictions("m", [record(i) for i in range(0, 50)], SPECS)
    w = store.features_window("m", T0, T0 + DAY, ["age"])
    assert w.columns["age"].tolist() == [float(i) for i in range(100)]


def test_missing_values_round_trip(store: Store) -> None:
    store.log_predictions("m", [record(0, features={"age": 1.0, "income": None, "city": None})], SPECS)
    w = store.features_window("m", T0, T0 + DAY, ["income", "city"])
    assert np.isnan(w.columns["income"][0]) and w.columns["city"][0] is None


def test_feature_added_later_reads_as_missing_for_old_rows(store: Store) -> None:
    store.log_predictions("m", [record(0)], SPECS)
    newer = [*SPECS, FeatureSpec(name="tenure")]
    store.log_predictions("m", [record(1, features={"age": 1.0, "income": 1.0, "city": "a", "tenure": 7})], newer)
    w = store.features_window("m", T0, T0 + DAY, ["tenure"])
    assert np.isnan(w.columns["tenure"][0]) and w.columns["tenure"][1] == 7.0


def test_frame_and_records_paths_store_the_same(store: Store) -> None:
    recs = [record(i) for i in range(30)]
    frame = pd.DataFrame(
        {
            "request_id": [f"f-{i}" for i in range(30)],
            "ts": pd.to_datetime([r.ts for r in recs], utc=True),
            "prediction": [r.prediction for r in recs],
            "score": [r.score for r in recs],
            "model_version": "1",
            **{name: [r.features[name] for r in recs] for name in ("age", "income", "city")},
        }
    )
    store.log_predictions("a", recs, SPECS)
    assert store.log_prediction_frame("b", frame, SPECS).inserted == 30
    assert store.log_prediction_frame("b", frame, SPECS).duplicates == 30
    wa = store.features_window("a", T0, T0 + DAY, ["age", "income", "city"])
    wb = store.features_window("b", T0, T0 + DAY, ["age", "income", "city"])
    np.testing.assert_array_equal(wa.ts, wb.ts)
    for c in ("age", "income", "city"):
        assert wa.columns[c].tolist() == wb.columns[c].tolist()
    naive = frame.assign(request_id=[f"n-{i}" for i in range(30)], ts=frame["ts"].dt.tz_localize(None))
    store.log_prediction_frame("c", naive, SPECS)  # naive timestamps are UTC
    np.testing.assert_array_equal(store.features_window("c", T0, T0 + DAY, []).ts, wa.ts)


def test_count_predictions(store: Store) -> None:
    store.log_predictions("m", [record(i) for i in range(100)], SPECS)
    assert store.count_predictions("m", T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)) == 10
    assert store.count_predictions("nobody", T0, T0 + DAY) == 0


def test_empty_batch_writes_nothing(store: Store) -> None:
    result = store.log_predictions("m", [], SPECS)
    assert (result.inserted, result.duplicates) == (0, 0)
    assert store.stats()["rows"]["feature_chunks"] == 0


def test_optional_fields_are_stored(store: Store) -> None:
    ab_id = store.start_ab_test("m", champion_version="1", challenger_version="2", split=0.5, salt="s")
    store.log_predictions(
        "m", [PredictionRecord("r", {"age": 1, "income": 2, "city": "x"}, 1.0, T0, "2", "u1", "challenger", None, ab_id)], SPECS
    )
    stats = store.stats()
    assert stats["predictions_per_model"]["m"]["count"] == 1
    assert stats["oldest_ts"] == T0.isoformat()
