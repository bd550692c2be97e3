from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
import sqlalchemy as sa

from retrainer.config import DataConfig
from retrainer.errors import ConfigError, RetrainerError
from retrainer.tasks.load import InsufficientDataError, MissingColumnsError, load_training_data

NOW = datetime(2025, 6, 1, tzinfo=timezone.utc)  # same instant as conftest.NOW


def test_table_source_splits_latest_slice_as_holdout(data_cfg_dict, training_db):
    _, frame = training_db
    data = load_training_data(DataConfig.model_validate(data_cfg_dict), now=NOW)
    assert data.train_samples == 240 and data.holdout_samples == 60
    assert len(data.X_train) == 240 and len(data.y_holdout) == 60
    assert list(data.X_train.columns) == ["x1", "x2", "colour"]
    assert all(type(c) is str for c in data.X_train.columns)  # sklearn ignores str subclasses as names
    # The holdout is the latest 60 rows by timestamp: its x1 values are those of the last 60 rows.
    latest = frame.sort_values("ts", kind="mergesort").tail(60)
    assert data.X_holdout["x1"].tolist() == pytest.approx(latest["x1"].tolist())
    assert data.holdout_start == latest["ts"].iloc[0].to_pydatetime()
    assert data.window_end == latest["ts"].iloc[-1].to_pydatetime()
    assert data.X_train["colour"].map(type).eq(str).all()
    assert data.rows_by_origin == {"source": 300}


def test_window_and_now_bound_the_rows(data_cfg_dict, training_db):
    _, frame = training_db
    cfg = DataConfig.model_validate(data_cfg_dict | {"window": "10d"})
    now = NOW - timedelta(days=5)
    data = load_training_data(cfg, now=now)
    ts = pd.to_datetime(frame["ts"], utc=True)
    expected = int(((ts > pd.Timestamp(now - timedelta(days=10))) & (ts <= pd.Timestamp(now))).sum())
    assert data.train_samples + data.holdout_samples == expected
    assert data.window_start > now - timedelta(days=10)
    assert data.window_end <= now


def test_query_source_binds_params_and_never_interpolates(tmp_path):
    url = f"sqlite:///{tmp_path / 'q.db'}"
    engine = sa.create_engine(url)
    rows = pd.DataFrame(
        {
            "x1": [float(i) for i in range(40)],
            "segment": ["o'brien"] * 30 + ["other"] * 10,
            "ts": [NOW - timedelta(hours=i + 1) for i in range(40)],
            "label": [i % 2 for i in range(40)],
        }
    )
    rows.to_sql("events", engine, index=False)
    engine.dispose()
    cfg = DataConfig.model_validate(
        {
            "source": {
                "url": url,
                "query": "SELECT x1, ts, label FROM events WHERE segment = :segment",
                "params": {"segment": "o'brien"},
            },
            "features": [{"name": "x1"}],
            "min_rows": 10,
            "holdout_fraction": 0.1,
        }
    )
    data = load_training_data(cfg, now=NOW)
    assert data.train_samples + data.holdout_samples == 30  # only the o'brien rows: the quote was bound

    # A value that would break out of the literal if interpolated is just a value that matches nothing.
    evil = cfg.model_copy(
        update={"source": cfg.source.model_copy(update={"params": {"segment": "x' OR '1'='1"}}), "min_rows": 1}
    )
    with pytest.raises(InsufficientDataError, match="found 0 labelled"):
        load_training_data(evil, now=NOW)


def test_query_params_that_do_not_match_are_a_config_error(tmp_path, data_cfg_dict):
    cfg = DataConfig.model_validate(
        data_cfg_dict
        | {"source": {"url": data_cfg_dict["source"]["url"], "query": "SELECT * FROM training", "params": {"nope": 1}}}
    )
    with pytest.raises(ConfigError, match="params"):
        load_training_data(cfg, now=NOW)


def test_too_few_rows_says_how_many_and_what_to_do(data_cfg_dict):
    cfg = DataConfig.model_validate(data_cfg_dict | {"min_rows": 1000})
    with pytest.raises(InsufficientDataError) as err:
        load_training_data(cfg, now=NOW)
    assert isinstance(err.value, RetrainerError)
    assert "found 300 labelled" in str(err.value) and "min_rows is 1000" in str(err.value)
    assert "widen data.window" in str(err.value)


def test_missing_columns_are_named(data_cfg_dict):
    cfg = DataConfig.model_validate(
        data_cfg_dict | {"features": [{"name": "x1"}, {"name": "income"}, {"name": "age"}]}
    )
    with pytest.raises(MissingColumnsError, match="income, age"):
        load_training_data(cfg, now=NOW)
    assert issubclass(MissingColumnsError, ConfigError)


def test_missing_columns_from_query_are_named(data_cfg_dict):
    cfg = DataConfig.model_validate(
        data_cfg_dict | {"source": {"url": data_cfg_dict["source"]["url"], "query": "SELECT x1, ts FROM training"}}
    )
    with pytest.raises(MissingColumnsError, match="x2, colour, label"):
        load_training_data(cfg, now=NOW)


def test_missing_table_is_a_clear_error(data_cfg_dict):
    cfg = DataConfig.model_validate(data_cfg_dict | {"source": {"url": data_cfg_dict["source"]["url"], "table": "nope"}})
    with pytest.raises(MissingColumnsError, match="'nope' does not exist"):
        load_training_data(cfg, now=NOW)


class FakeStore:
    def __init__(self, frame):
        self.frame = frame
        self.calls = []

    def labelled_frame(self, model_name, start, end, *, as_of, columns):
        self.calls.append((model_name, start, end, as_of, tuple(columns)))
        return self.frame[[*columns, "label", "ts"]]


def test_inference_log_rows_are_appended(data_cfg_dict):
    log = pd.DataFrame(
        {
            "x1": [0.5] * 20,
            "x2": [0.1] * 20,
            "colour": [7] * 20,  # categorical comes back as strings
            "label": [1] * 20,
            "ts": [NOW - timedelta(minutes=i) for i in range(20)],
        }
    )
    store = FakeStore(log)
    cfg = DataConfig.model_validate(data_cfg_dict | {"include_inference_log": True, "window": "60d"})
    data = load_training_data(cfg, now=NOW, store=store, model_name="churn")
    assert data.rows_by_origin == {"source": 300, "inference_log": 20}
    assert data.train_samples + data.holdout_samples == 320
    assert store.calls == [("churn", NOW - timedelta(days=60), NOW, NOW, ("x1", "x2", "colour"))]
    # The log rows are the newest, so they land in the holdout, with colour as the string "7".
    assert (data.X_holdout["colour"] == "7").sum() == 20


def test_inference_log_without_store_is_a_config_error(data_cfg_dict):
    cfg = DataConfig.model_validate(data_cfg_dict | {"include_inference_log": True})
    with pytest.raises(ConfigError, match="include_inference_log"):
        load_training_data(cfg, now=NOW)


def test_now_must_be_aware(data_cfg_dict):
    with pytest.raises(ValueError, match="timezone-aware"):
        load_training_data(DataConfig.model_validate(data_cfg_dict), now=NOW.replace(tzinfo=None))


# -- bad training data (issue 20): refused in one line, never retried -------------------------


def _ctas(url: str, select: str) -> str:
    """A table made with CREATE TABLE … AS SELECT from `training` (SQLite declares a TIMESTAMP column NUM)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE copied AS SELECT {select} FROM training")
        declared = {row[1]: row[2] for row in conn.exec_driver_sql("PRAGMA table_info(copied)")}
    engine.dispose()
    return declared["ts"]


def test_a_table_made_with_create_table_as_select_is_read_as_its_source(data_cfg_dict, training_db):
    url, _ = training_db
    assert _ctas(url, "*") == "NUM"  # the declared type SQLAlchemy used to convert ISO text with (TypeError)
    original = load_training_data(DataConfig.model_validate(data_cfg_dict), now=NOW)
    copied = load_training_data(DataConfig.model_validate(data_cfg_dict | {"source": {"url": url, "table": "copied"}}),
                                now=NOW)
    assert (copied.train_samples, copied.holdout_samples) == (original.train_samples, original.holdout_samples)
    assert copied.holdout_start == original.holdout_start and copied.window_end == original.window_end
    pd.testing.assert_frame_equal(copied.X_train, original.X_train)
    pd.testing.assert_series_equal(copied.y_holdout, original.y_holdout)


def test_a_timestamp_column_of_numbers_is_named_with_its_type_and_what_would_work(data_cfg_dict, training_db):
    from retrainer.errors import TrainingDataError

    url, _ = training_db
    _ctas(url, "x1, x2, colour, CAST(strftime('%s', ts) AS INTEGER) AS ts, label")
    cfg = DataConfig.model_validate(data_cfg_dict | {"source": {"url": url, "table": "copied"}})
    with pytest.raises(TrainingDataError) as err:
        load_training_data(cfg, now=NOW)
    message = str(err.value)
    assert "\n" not in message and err.value.permanent
    assert "column 'ts' (data.timestamp_column) holds numbers such as [174" in message
    assert "(column declared INTEGER)" in message
    assert "ISO-8601 text" in message and "datetime(ts, 'unixepoch') AS ts" in message


def test_a_timestamp_column_of_other_text_shows_the_values(data_cfg_dict, training_db):
    from retrainer.errors import TrainingDataError

    url, _ = training_db
    _ctas(url, "x1, x2, colour, CASE WHEN rowid % 50 = 0 THEN 'last tuesday' ELSE ts END AS ts, label")
    cfg = DataConfig.model_validate(data_cfg_dict | {"source": {"url": url, "table": "copied"}})
    with pytest.raises(TrainingDataError, match=r"column 'ts' \(data.timestamp_column\) holds str that is not a "
                                                r"timestamp, such as \['last tuesday', 'last tuesday', 'last tuesday'\]"):
        load_training_data(cfg, now=NOW)


def _relabel(url: str, sql: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(sql)
    engine.dispose()


def test_a_single_class_label_is_refused_naming_the_column_and_the_counts(data_cfg_dict, training_db):
    url, _ = training_db
    _relabel(url, "UPDATE training SET label = 0")
    with pytest.raises(InsufficientDataError) as err:
        load_training_data(DataConfig.model_validate(data_cfg_dict), now=NOW)
    message = str(err.value)
    assert "\n" not in message and err.value.permanent
    assert message.startswith("label column 'label' has a single class in the 300 labelled row(s)")
    assert "(0: 300): a model trained on it can only answer 0" in message


def test_a_class_rarer_than_min_rows_per_class_is_refused_with_the_counts(data_cfg_dict, training_db):
    url, frame = training_db
    _relabel(url, "UPDATE training SET label = 0 WHERE rowid > 5")  # 5 rows can stay 1 at most
    ones = int(frame["label"].iloc[:5].sum())
    assert ones >= 1  # the fixture's first rows include a positive (seeded)
    with pytest.raises(InsufficientDataError) as err:
        load_training_data(DataConfig.model_validate(data_cfg_dict), now=NOW)
    assert "fewer than data.min_rows_per_class (10) rows of class 1" in str(err.value)
    assert f"(0: {300 - ones}, 1: {ones})" in str(err.value)


def test_a_training_split_without_a_class_is_refused(data_cfg_dict, training_db):
    url, frame = training_db
    latest = frame.sort_values("ts", kind="mergesort").tail(60)
    first_holdout = latest["ts"].iloc[0].strftime("%Y-%m-%d %H:%M:%S")
    # Every 1 in the holdout, none before it: the model would never see a 1.
    _relabel(url, f"UPDATE training SET label = CASE WHEN ts >= '{first_holdout}' THEN rowid % 2 ELSE 0 END")
    with pytest.raises(InsufficientDataError, match=r"label column 'label': the training split has no row of class 1 "
                                                    r"\(training 0: 240; holdout, the latest 20% by time, 0: 30, 1: 30\)"):
        load_training_data(DataConfig.model_validate(data_cfg_dict), now=NOW)


def test_a_holdout_without_a_class_still_trains(data_cfg_dict, training_db):
    url, frame = training_db
    first_holdout = frame.sort_values("ts", kind="mergesort").tail(60)["ts"].iloc[0].strftime("%Y-%m-%d %H:%M:%S")
    _relabel(url, f"UPDATE training SET label = 0 WHERE ts >= '{first_holdout}'")
    data = load_training_data(DataConfig.model_validate(data_cfg_dict), now=NOW)
    assert set(data.y_holdout) == {0} and set(data.y_train) == {0, 1}


def test_min_rows_per_class_is_the_configured_minimum(data_cfg_dict, training_db):
    _, frame = training_db
    smallest = int(frame["label"].value_counts().min())
    load_training_data(DataConfig.model_validate(data_cfg_dict | {"min_rows_per_class": smallest}), now=NOW)
    with pytest.raises(InsufficientDataError, match=rf"min_rows_per_class \({smallest + 1}\)"):
        load_training_data(DataConfig.model_validate(data_cfg_dict | {"min_rows_per_class": smallest + 1}), now=NOW)
