"""Chunk compaction: windows read the same before and after, fewer chunks, idempotent, safe
next to ingest and next to another compactor (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from thread_race import race

from retrainer.config import FeatureSpec
from retrainer.store import LabelRecord, Store
from retrainer.store.compaction import plan_groups

from .conftest import SPECS, T0, record

EXTRA = FeatureSpec(name="extra", type="numeric", nullable=True)
WINDOWS = [
    (T0, T0 + timedelta(days=30)),
    (T0 + timedelta(minutes=17), T0 + timedelta(minutes=95)),
    (T0 + timedelta(minutes=100), T0 + timedelta(minutes=101)),
    (T0 + timedelta(minutes=150), T0 + timedelta(minutes=400)),
]
AS_OF = T0 + timedelta(days=60)
COLUMNS = ["age", "income", "city", "extra"]


def fill(store: Store, n: int = 240, batch: int = 3) -> None:
    """Small batches with everything the reader has to get right: out-of-order ts, missing
    values, a numeric feature that only later batches have, a re-sent batch, labels."""
    for start in range(0, n, batch):
        ids = range(start, min(start + batch, n))
        recs = []
        for i in ids:
            minutes = i if i % 7 else i - 5.5  # out of order inside and across batches
            over: dict[str, object] = {}
            if i % 5 == 0:
                over["features"] = {"age": float(i), "income": None, "city": None}
            r = record(i, minutes=minutes, **over)
            if start >= n // 2:
                r = dataclasses.replace(r, features={**r.features, "extra": float(i) / 3})
            recs.append(r)
        specs = SPECS + [EXTRA] if start >= n // 2 else SPECS
        store.log_predictions("m", recs, specs)
    store.log_predictions("m", [record(1), record(2)], SPECS)  # duplicates: no chunk
    store.log_labels([LabelRecord(request_id=f"req-{i}", label=float(i % 3 == 0), ts=T0 + timedelta(minutes=i + 30)) for i in range(0, n, 2)])


def snapshot(store: Store) -> list[object]:
    out: list[object] = []
    for start, end in WINDOWS:
        w = store.features_window("m", start, end, COLUMNS)
        out.append(("features", w.ts, w.prediction_ids, {c: (v.dtype, v.tolist()) for c, v in w.columns.items()}))
        lw = store.labelled_window("m", start, end, as_of=AS_OF)
        out.append(("labelled", lw.y_true, lw.y_pred, lw.score, lw.ts, lw.n_predictions))
        out.append(("frame", store.labelled_frame("m", start, end, as_of=AS_OF, columns=COLUMNS)))
        out.append(("count", store.count_predictions("m", start, end), store.count_predictions("m", start, end, labelled=True)))
    return out


def assert_same(a: list[object], b: list[object]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x[0] == y[0]  # type: ignore[index]
        for u, v in zip(x[1:], y[1:], strict=True):  # type: ignore[index]
            if isinstance(u, np.ndarray):
                assert u.dtype == v.dtype and u.tobytes() == v.tobytes()
            elif isinstance(u, pd.DataFrame):
                pd.testing.assert_frame_equal(u, v, check_exact=True)
            elif isinstance(u, dict):
                assert u.keys() == v.keys()
                for c in u:
                    assert u[c][0] == v[c][0], c
                    assert repr(u[c][1]) == repr(v[c][1]), c  # nan == nan by repr, exact floats
            else:
                assert u == v


def chunk_count(store: Store) -> int:
    return store.count_chunks("m")


def test_windows_read_identically_after_compaction(store: Store) -> None:
    fill(store)
    before = snapshot(store)
    n_chunks = chunk_count(store)
    result = store.compact_chunks("m", target_rows=40)
    assert result.chunks_before == n_chunks == 80
    assert result.chunks_after == chunk_count(store) < n_chunks // 5
    assert result.rows == 240 and result.skipped == 0
    assert_same(before, snapshot(store))


def test_compaction_is_idempotent_and_respects_before_and_size(store: Store) -> None:
    fill(store)
    cut = T0 + timedelta(minutes=120)
    first = store.compact_chunks("m", before=cut, target_rows=10)
    assert first.groups > 0 and first.chunks_after < first.chunks_before
    again = store.compact_chunks("m", before=cut, target_rows=10)
    assert (again.groups, again.rows, again.chunks_after) == (0, 0, first.chunks_after)
    # Nothing past the cut was touched; nothing merged beyond ~target_rows.
    from retrainer.store.engine import read_tx
    from retrainer.store.schema import feature_chunks as fc

    with read_tx(store.engine) as conn:
        rows = conn.execute(fc.select().where(fc.c.model_name == "m")).all()
    assert all(r.n_rows <= 10 for r in rows)
    assert sum(1 for r in rows if r.ts_max >= cut.timestamp()) == sum(1 for r in rows if r.n_rows <= 3 and r.ts_max >= cut.timestamp())
    assert sum(r.n_rows for r in rows) == 240


def test_categorical_column_missing_from_some_chunks_splits_the_run(store: Store) -> None:
    no_city = [s for s in SPECS if s.name != "city"]
    for start in range(0, 30, 3):
        specs = no_city if start < 15 else SPECS
        recs = [record(i) for i in range(start, start + 3)]
        if specs is no_city:
            recs = [dataclasses.replace(r, features={k: v for k, v in r.features.items() if k != "city"}) for r in recs]
        store.log_predictions("m", recs, specs)
    before = snapshot(store)
    result = store.compact_chunks("m", target_rows=1000)
    assert result.chunks_after == 2 and result.groups == 2
    assert_same(before, snapshot(store))
    # A window inside the no-city part still reads city as the reader always did (float NaN).
    w = store.features_window("m", T0, T0 + timedelta(minutes=10), ["city"])
    assert w.columns["city"].dtype == np.float64 and np.isnan(w.columns["city"]).all()


def test_other_models_and_big_chunks_are_left_alone(store: Store) -> None:
    for start in range(0, 12, 3):
        store.log_predictions("m", [record(i) for i in range(start, start + 3)], SPECS)
        store.log_predictions("other", [record(100 + i) for i in range(start, start + 3)], SPECS)
    store.log_predictions("m", [record(i) for i in range(12, 40)], SPECS)  # one big chunk
    store.log_predictions("m", [record(i) for i in range(40, 43)], SPECS)
    before = snapshot(store)
    result = store.compact_chunks("m", target_rows=20)
    assert (result.chunks_before, result.chunks_after) == (6, 3)  # 4 small -> 1, big, last alone
    assert store.count_chunks("other") == 4
    assert_same(before, snapshot(store))
    assert store.chunk_models() == ["m", "other"]


def test_plan_groups_is_greedy_and_stable() -> None:
    chunks = [(i, n, float(i), 0.0) for i, n in enumerate([3, 3, 3, 50, 3, 3, 9, 1], start=1)]
    groups = plan_groups(chunks, before=None, target_rows=10)
    assert [[c.id for c in g] for g in groups] == [[1, 2, 3], [5, 6], [7, 8]]
    assert plan_groups(chunks, before=3.0, target_rows=10) == [[c for c in groups[0][:2]]]
    merged = [(1, 9, 3.0, 0.0), (4, 50, 4.0, 0.0), (5, 6, 6.0, 0.0), (7, 11, 8.0, 0.0)]
    assert plan_groups(merged, before=None, target_rows=10) == []


def test_concurrent_ingest_during_compaction_loses_nothing(store_url: str) -> None:
    setup = Store.open(store_url, max_batch=1000)
    setup.init()
    for start in range(0, 600, 2):
        setup.log_predictions("m", [record(i) for i in range(start, start + 2)], SPECS)
    stop = threading.Event()
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            with Store.open(store_url) as s:
                for start in range(600, 900, 2):
                    s.log_predictions("m", [record(i) for i in range(start, start + 2)], SPECS)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    writer = threading.Thread(target=ingest)
    writer.start()
    passes = 0
    with Store.open(store_url) as compactor:
        while not stop.is_set() or passes == 0:
            compactor.compact_chunks("m", target_rows=40)
            passes += 1
    writer.join()
    assert not errors
    final = setup.compact_chunks("m", target_rows=40)
    w = setup.features_window("m", T0, T0 + timedelta(days=30), COLUMNS)
    assert sorted(w.prediction_ids.tolist()) == sorted(set(w.prediction_ids.tolist()))
    assert len(w) == 900 == setup.count_predictions("m", T0, T0 + timedelta(days=30))
    assert w.columns["age"].tolist() == [float(i) for i in range(900)]
    assert final.chunks_after <= 900 // 40 + 2
    setup.close()


def test_two_compactors_at_once_produce_no_duplicates(store_url: str) -> None:
    setup = Store.open(store_url, max_batch=1000)
    setup.init()
    for start in range(0, 600, 3):
        setup.log_predictions("m", [record(i) for i in range(start, start + 3)], SPECS)
    before = snapshot(setup)
    by_index, errors = race(2, lambda s, _: s.compact_chunks("m", target_rows=30), each=lambda: Store.open(store_url))
    results = list(by_index.values())
    assert not errors and len(results) == 2
    assert sum(r.groups for r in results) == 20  # each group merged exactly once
    assert setup.count_chunks("m") == 20
    assert_same(before, snapshot(setup))
    setup.close()


@pytest.mark.parametrize("target", [2, 7])
def test_small_targets(store: Store, target: int) -> None:
    fill(store, n=60, batch=1)
    before = snapshot(store)
    store.compact_chunks("m", target_rows=target)
    assert_same(before, snapshot(store))
    assert store.compact_chunks("m", target_rows=target).groups == 0


def test_cli_store_compact(tmp_path, capsys) -> None:
    import json

    from retrainer.cli import main

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with Store.open(url) as s:
        s.init()
        for start in range(0, 30, 3):
            s.log_predictions("m", [record(i) for i in range(start, start + 3)], SPECS)
    capsys.readouterr()
    assert main(["store", "compact", "--url", url, "--older-than", "0s", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["model"], row["chunks_before"], row["chunks_after"], row["rows"]) == ("m", 10, 1, 30)
    assert main(["store", "compact", "--url", url, "--model", "m", "--older-than", "0s"]) == 0
    assert "m: 1 → 1 chunks" in capsys.readouterr().out
