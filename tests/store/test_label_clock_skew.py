"""A label timed in the future (a wrong clock, year 2999) must not outrank every later correction:
beyond the receive time + ``store.max_label_clock_skew`` it is refused, within it it is stored at
its receive time, and a correction sent afterwards wins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from retrainer.errors import ValidationError
from retrainer.store import LabelRecord, Store

from .conftest import SPECS, T0, record

H = timedelta(hours=1)
RECEIVED = T0 + 2 * H


def _label(store: Store, rid: str) -> tuple[float, float]:
    with store.engine.connect() as conn:
        import sqlalchemy as sa

        return tuple(conn.execute(sa.text("SELECT label, label_ts FROM predictions WHERE request_id = :r"), {"r": rid}).one())


def test_a_label_far_in_the_future_is_refused_and_a_correction_wins(store: Store) -> None:
    store.log_predictions("m", [record(0)], SPECS)
    with pytest.raises(ValidationError, match=r"row 0: ts: 2999-01-01.*clock skew of 5 min") as err:
        store.log_labels([LabelRecord("req-0", 1.0, datetime(2999, 1, 1, tzinfo=UTC))], received_at=RECEIVED)
    assert len(err.value.problems) == 1
    assert store.stats()["rows"]["labels"] == 0  # nothing written
    store.log_labels([LabelRecord("req-0", 0.0, RECEIVED)], received_at=RECEIVED)
    store.log_labels([LabelRecord("req-0", 1.0, RECEIVED + H)], received_at=RECEIVED + H)  # the correction
    assert _label(store, "req-0") == (1.0, (RECEIVED + H).timestamp())


def test_a_label_slightly_ahead_is_stored_at_its_receive_time_and_loses_to_a_later_correction(store: Store) -> None:
    store.log_predictions("m", [record(0)], SPECS)
    ahead = RECEIVED + timedelta(minutes=4)  # within the skew: accepted, clamped
    store.log_labels([LabelRecord("req-0", 0.0, ahead)], received_at=RECEIVED)
    assert _label(store, "req-0") == (0.0, RECEIVED.timestamp())
    # Corrected one minute later, timed by a clock that is right: without the clamp, 0.0 (timed +4 min) would win.
    corrected = RECEIVED + timedelta(minutes=1)
    store.log_labels([LabelRecord("req-0", 1.0, corrected)], received_at=corrected)
    assert _label(store, "req-0") == (1.0, corrected.timestamp())
    assert store.labelled_window("m", T0, T0 + H, as_of=corrected).y_true.tolist() == [1.0]


def test_the_skew_is_configurable_and_defaults_to_wall_clock_now(store_url: str) -> None:
    s = Store.open(store_url, max_label_clock_skew=timedelta(days=2))
    s.init()
    s.log_predictions("m", [record(0), record(1)], SPECS)
    now = datetime.now(UTC)
    s.log_labels([LabelRecord("req-0", 1.0, now + timedelta(days=1))])  # received now, 1 day ahead: allowed
    assert _label(s, "req-0")[1] <= datetime.now(UTC).timestamp()  # clamped to the receive time
    with pytest.raises(ValidationError, match="clock skew of 2880 min"):
        s.log_labels([LabelRecord("req-1", 1.0, now + timedelta(days=3))])
    s.close()


def test_config_field_reaches_the_store(tmp_path) -> None:
    from retrainer.config import parse_config

    cfg = parse_config({
        "model": {"name": "m"}, "store": {"url": f"sqlite:///{tmp_path / 's.db'}", "max_label_clock_skew": "1h"},
        "data": {"source": {"url": "sqlite:///unused.db", "table": "t"}, "features": [{"name": "x"}]},
    }, base_dir=tmp_path, environ={})
    assert cfg.store.max_label_clock_skew == H
    Store.open(cfg.store.url).init()
    with Store.from_config(cfg) as s:
        assert s.max_label_clock_skew == H
