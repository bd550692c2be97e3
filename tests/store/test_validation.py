"""Bad batches are rejected whole with every problem listed, and nothing is written."""

from __future__ import annotations

import math
from datetime import timedelta

import pandas as pd
import pytest

from retrainer.config import FeatureSpec
from retrainer.errors import InvalidIdentifierError, StoreError, ValidationError
from retrainer.store import LabelRecord, PredictionRecord, Store

from .conftest import SPECS, T0, record


def _nothing_written(store: Store) -> None:
    stats = store.stats()["rows"]
    assert stats["predictions"] == 0
    assert stats["feature_chunks"] == 0
    assert stats["labels"] == 0


def _reject(store: Store, records: list[PredictionRecord], specs=SPECS) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        store.log_predictions("m", records, specs)
    assert "nothing was written" in str(info.value)
    _nothing_written(store)
    return info.value


def test_unknown_and_missing_features_are_named_per_row(store: Store) -> None:
    good = [record(i) for i in range(5)]
    extra = record(5, features={"age": 1.0, "income": 2.0, "city": "a", "colour": "red"})
    lacking = record(6, features={"age": 1.0, "city": "a"})
    err = _reject(store, [*good, extra, lacking])
    assert err.problems == [
        "row 5: feature 'colour': unknown feature (not in the model's feature specs)",
        "row 6: feature 'income': missing",
    ]


def test_wrong_types_are_named(store: Store) -> None:
    err = _reject(
        store,
        [
            record(0, features={"age": "old", "income": 1.0, "city": "a"}),
            record(1, features={"age": 1.0, "income": 1.0, "city": 3.5}),
            record(2, prediction="yes"),
            record(3, ts="2024-01-01"),
            record(4, request_id=42),
            record(5, score=math.inf),
        ],
    )
    assert err.problems == [
        "row 0: age: expected a number, got str 'old'",
        "row 1: city: expected a category (str, int or bool), got float 3.5",
        "row 4: request_id: expected a string, got int 42",
        "row 3: ts: expected a datetime, got str '2024-01-01'",
        "row 2: prediction: expected a number, got str 'yes'",
        "row 5: score: inf is not a finite number",
    ]


def test_nan_only_where_nullable(store: Store) -> None:
    ok = [record(0, features={"age": 1.0, "income": math.nan, "city": None})]
    assert store.log_predictions("m", ok, SPECS).inserted == 1
    with pytest.raises(ValidationError) as info:
        store.log_predictions(
            "m",
            [record(1, features={"age": math.nan, "income": 1.0, "city": "a"}), record(2, features={"age": None, "income": 1.0, "city": "a"})],
            SPECS,
        )
    assert info.value.problems == [
        "row 0: age: missing value (None/NaN) where none is allowed",
        "row 1: age: missing value (None/NaN) where none is allowed",
    ]
    assert store.count_predictions("m", T0, T0 + timedelta(days=1)) == 1


def test_oversized_batch_is_refused_before_reading_rows(store: Store) -> None:
    err = _reject(store, [record(i) for i in range(1001)])  # fixture max_batch=1000
    assert err.problems == ["batch has 1001 rows, more than max_batch=1000: split it into smaller batches"]
    with pytest.raises(ValidationError, match="max_batch"):
        store.log_labels([LabelRecord(f"r{i}", 1.0, T0) for i in range(1001)])


def test_identifiers_are_checked_before_any_sql(store: Store) -> None:
    bad = FeatureSpec.model_construct(name='x"; DROP TABLE predictions; --', type="numeric", nullable=False)
    executed: list[str] = []
    import sqlalchemy as sa

    sa.event.listen(store.engine, "before_cursor_execute", lambda c, cur, stmt, *a: executed.append(stmt))
    with pytest.raises(ValidationError) as info:
        store.log_predictions("m", [record(0, features={bad.name: 1.0})], [bad])
    assert executed == []
    assert info.value.problems[0].startswith("feature 'x\"; DROP TABLE predictions; --': not a plain SQL name")
    with pytest.raises(InvalidIdentifierError):
        store.features_window("m", T0, T0 + timedelta(days=1), ["age; --"])
    assert executed == []
    twice = _reject(store, [record(0)], [*SPECS, FeatureSpec(name="age")])
    assert twice.problems == ["feature 'age': listed twice in the feature specs"]


def test_errors_are_store_errors_and_the_message_is_capped(store: Store) -> None:
    records = [record(i, features={"age": "x", "income": 1.0, "city": "a"}) for i in range(50)]
    with pytest.raises(StoreError) as info:
        store.log_predictions("m", records, SPECS)
    assert len(info.value.problems) == 50  # type: ignore[attr-defined]
    assert "... and 30 more" in str(info.value)


def test_frame_path_rejects_the_same_things(store: Store) -> None:
    frame = pd.DataFrame(
        {
            "request_id": ["a", "b", None],
            "ts": pd.to_datetime(["2024-01-01", "2024-01-02", None], utc=True),
            "prediction": [1.0, 0.0, 1.0],
            "age": [1.0, float("nan"), 3.0],
            "income": [1.0, 2.0, 3.0],
            "city": ["a", "b", 7.5],
            "colour": ["r", "g", "b"],
        }
    )
    with pytest.raises(ValidationError) as info:
        store.log_prediction_frame("m", frame, SPECS)
    assert info.value.problems == ["column 'colour': unknown (not a prediction field nor in the model's feature specs)"]
    with pytest.raises(ValidationError) as info:
        store.log_prediction_frame("m", frame.drop(columns=["colour"]), SPECS)
    assert info.value.problems == [
        "row 1: age: missing value (None/NaN) where none is allowed",
        "row 2: city: expected a category (str, int or bool), got float 7.5",
        "row 2: request_id: missing (a non-empty string is required)",
        "row 2: ts: missing timestamp",
    ]
    _nothing_written(store)


def test_unknown_ab_test_rolls_back_the_whole_batch(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        store.log_predictions("m", [record(0), record(1, ab_test_id=999)], SPECS)
    assert info.value.problems == ["row 1: ab_test_id: no A/B test with id 999"]
    _nothing_written(store)


def test_bad_labels_are_rejected_whole(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        store.log_labels([LabelRecord("a", 1.0, T0), LabelRecord("", math.nan, "now")])  # type: ignore[arg-type]
    assert info.value.problems == [
        "row 1: request_id: must be 1-255 characters, got 0",
        "row 1: label: missing value (None/NaN) where none is allowed",
        "row 1: ts: expected a datetime, got str 'now'",
    ]
    _nothing_written(store)
