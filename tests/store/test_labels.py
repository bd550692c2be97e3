from __future__ import annotations

from datetime import timedelta

import numpy as np

from retrainer.store import LabelRecord, Store

from .conftest import SPECS, T0, record

H = timedelta(hours=1)


def test_unknown_request_ids_are_kept_and_counted(store: Store) -> None:
    store.log_predictions("m", [record(i) for i in range(3)], SPECS)
    result = store.log_labels([LabelRecord("req-0", 1.0, T0 + H), LabelRecord("ghost-1", 0.0, T0 + H), LabelRecord("ghost-2", 1.0, T0 + H)])
    assert (result.written, result.unknown_request_ids) == (3, ["ghost-1", "ghost-2"])
    assert store.unmatched_labels() == 2
    assert store.stats()["unmatched_labels"] == 2
    # The prediction turns up late: its label is matched from then on.
    store.log_predictions("m", [record(9, request_id="ghost-1")], SPECS)
    assert store.unmatched_labels() == 1
    lw = store.labelled_window("m", T0, T0 + 10 * H, as_of=T0 + 2 * H)
    assert len(lw) == 2


def test_latest_label_time_wins_whatever_the_arrival_order(store: Store) -> None:
    store.log_predictions("m", [record(0), record(1)], SPECS)
    store.log_labels([LabelRecord("req-0", 0.0, T0 + H)])
    store.log_labels([LabelRecord("req-0", 1.0, T0 + 3 * H)])  # correction
    store.log_labels([LabelRecord("req-0", 0.0, T0 + 2 * H)])  # stale retry arrives last
    store.log_labels([LabelRecord("req-1", 0.0, T0 + H), LabelRecord("req-1", 1.0, T0 + 2 * H), LabelRecord("req-1", 0.0, T0 + H)])
    lw = store.labelled_window("m", T0, T0 + H, as_of=T0 + 10 * H)
    assert lw.y_true.tolist() == [1.0, 1.0]
    assert store.stats()["rows"]["labels"] == 2


def test_as_of_only_sees_matured_labels(store: Store) -> None:
    store.log_predictions("m", [record(i) for i in range(10)], SPECS)  # ts T0 + i min
    store.log_labels([LabelRecord(f"req-{i}", float(i % 2), T0 + (i + 1) * H) for i in range(10)])  # label i at T0+(i+1)h
    window = (T0, T0 + H)
    at_5h = store.labelled_window("m", *window, as_of=T0 + 5 * H)
    assert len(at_5h) == 5 and at_5h.n_predictions == 10 and at_5h.coverage == 0.5
    assert at_5h.y_true.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert at_5h.y_pred.tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    np.testing.assert_allclose(at_5h.score, [i / 1000 for i in range(5)])
    assert len(store.labelled_window("m", *window, as_of=T0)) == 0
    assert store.count_predictions("m", *window, labelled=True, as_of=T0 + 5 * H) == 5
    assert store.count_predictions("m", *window, labelled=True) == 10
    assert store.count_predictions("m", *window) == 10


def test_labelled_window_filters_by_model_version(store: Store) -> None:
    store.log_predictions("m", [record(0, model_version="1"), record(1, model_version="2", score=None)], SPECS)
    store.log_labels([LabelRecord("req-0", 1.0, T0), LabelRecord("req-1", 0.0, T0)])
    v2 = store.labelled_window("m", T0, T0 + H, as_of=T0 + H, model_version="2")
    assert v2.y_true.tolist() == [0.0] and np.isnan(v2.score[0]) and v2.n_predictions == 1


def test_labelled_frame_joins_features_and_labels(store: Store) -> None:
    store.log_predictions("m", [record(i) for i in range(20)], SPECS)
    store.log_labels([LabelRecord(f"req-{i}", float(i), T0 + H) for i in range(0, 20, 2)])
    store.log_labels([LabelRecord("req-1", 99.0, T0 + 5 * H)])  # not matured at as_of
    frame = store.labelled_frame("m", T0, T0 + H, as_of=T0 + 2 * H, columns=["age", "city"])
    assert list(frame.columns) == ["age", "city", "prediction", "label", "ts"]
    assert frame["age"].tolist() == [float(i) for i in range(0, 20, 2)]
    assert frame["label"].tolist() == [float(i) for i in range(0, 20, 2)]
    assert frame["city"].tolist() == [["a", "b", "c"][i % 3] for i in range(0, 20, 2)]
    assert str(frame["ts"].dt.tz) == "UTC"


def test_label_before_its_prediction_is_picked_up_when_the_prediction_arrives(store: Store) -> None:
    assert store.log_labels([LabelRecord("req-0", 1.0, T0 + H)]).unknown_request_ids == ["req-0"]
    store.log_predictions("m", [record(0), record(1)], SPECS)
    lw = store.labelled_window("m", T0, T0 + H, as_of=T0 + 2 * H)
    assert lw.y_true.tolist() == [1.0] and lw.y_pred.tolist() == [0.0] and lw.n_predictions == 2
    assert len(store.labelled_window("m", T0, T0 + H, as_of=T0)) == 0  # its label time still counts
    assert store.count_predictions("m", T0, T0 + H, labelled=True, as_of=T0 + 2 * H) == 1
    assert store.count_predictions("m", T0, T0 + H, labelled=True, as_of=T0 + H / 2) == 0
    assert store.unmatched_labels() == 0
    # A re-sent prediction (duplicate request id) leaves the label where it is.
    assert store.log_predictions("m", [record(0)], SPECS).duplicates == 1
    assert store.count_predictions("m", T0, T0 + H, labelled=True) == 1


def test_label_update_keeps_the_latest_label_and_its_time(store: Store) -> None:
    store.log_predictions("m", [record(0)], SPECS)
    store.log_labels([LabelRecord("req-0", 0.0, T0 + H)])
    store.log_labels([LabelRecord("req-0", 1.0, T0 + 3 * H)])  # correction
    store.log_labels([LabelRecord("req-0", 0.0, T0 + 2 * H)])  # stale retry: ignored
    window = (T0, T0 + H)
    assert store.labelled_window("m", *window, as_of=T0 + 4 * H).y_true.tolist() == [1.0]
    # One label per request id: as of 2h the (replaced) 1h label is gone and 3h is not yet known.
    assert len(store.labelled_window("m", *window, as_of=T0 + 2 * H)) == 0
    assert store.count_predictions("m", *window, labelled=True, as_of=T0 + 2 * H) == 0
    assert store.count_predictions("m", *window, labelled=True, as_of=T0 + 3 * H) == 1
    # Same label time again: the later write wins (as in the labels table).
    store.log_labels([LabelRecord("req-0", 0.0, T0 + 3 * H)])
    assert store.labelled_window("m", *window, as_of=T0 + 3 * H).y_true.tolist() == [0.0]


def test_labelled_frame_and_counts_exclude_labels_after_as_of(store: Store) -> None:
    store.log_predictions("m", [record(i) for i in range(6)], SPECS)
    store.log_labels([LabelRecord(f"req-{i}", 1.0, T0 + i * H) for i in range(6)])
    frame = store.labelled_frame("m", T0, T0 + H, as_of=T0 + 2 * H, columns=["age"])
    assert frame["age"].tolist() == [0.0, 1.0, 2.0]
    assert store.count_predictions("m", T0, T0 + H, labelled=True, as_of=T0 + 2 * H) == 3
    assert store.labelled_window("m", T0, T0 + H, as_of=T0 + 2 * H).n_predictions == 6


def test_labelled_window_orders_by_ts_then_id(store: Store) -> None:
    # Same ts for all, logged in two batches out of ts order.
    store.log_predictions("m", [record(i, minutes=5) for i in (3, 4)], SPECS)
    store.log_predictions("m", [record(i, minutes=1 if i == 0 else 5) for i in (0, 1, 2)], SPECS)
    store.log_labels([LabelRecord(f"req-{i}", float(i), T0 + H - i * timedelta(minutes=1)) for i in range(5)])
    lw = store.labelled_window("m", T0, T0 + H, as_of=T0 + H)
    assert lw.y_true.tolist() == [0.0, 3.0, 4.0, 1.0, 2.0]  # ts, then insertion (id) order


def test_a_label_time_before_its_predictions_time_is_raised_to_it(store: Store) -> None:
    """A label cannot be known before the prediction it labels: stored at the prediction's time
    (and said so), so the label delay is never negative; also when the label came first."""
    store.log_predictions("m", [record(0), record(1)], SPECS)
    result = store.log_labels([LabelRecord("req-0", 1.0, T0 - 30 * 24 * H), LabelRecord("req-1", 0.0, T0 + H),
                               LabelRecord("early-ghost", 1.0, T0 - 48 * H)])
    assert result.clamped_request_ids == ["req-0"] and result.unknown_request_ids == ["early-ghost"]
    store.log_predictions("m", [record(2, request_id="early-ghost")], SPECS)  # its prediction turns up later
    label_ts = dict(zip(*_label_times(store), strict=True))
    made = dict(zip(*_prediction_times(store), strict=True))
    assert label_ts["req-0"] == made["req-0"] and label_ts["early-ghost"] == made["early-ghost"]
    assert label_ts["req-1"] > made["req-1"]
    delay = store.label_delay("m", as_of=T0 + 2 * H)
    assert delay.n == 3 and delay.p50 is not None and delay.p50.total_seconds() >= 0


def _prediction_times(store: Store) -> tuple[list[str], list[float]]:
    import sqlalchemy as sa

    from retrainer.store.schema import predictions as p

    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(p.c.request_id, p.c.ts)).all()
    return [r[0] for r in rows], [r[1] for r in rows]


def _label_times(store: Store) -> tuple[list[str], list[float]]:
    import sqlalchemy as sa

    from retrainer.store.schema import predictions as p

    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(p.c.request_id, p.c.label_ts).where(p.c.label_ts.is_not(None))).all()
    return [r[0] for r in rows], [r[1] for r in rows]
