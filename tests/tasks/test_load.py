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
