"""Several processes writing one store at once: exact counts, no SQLITE_BUSY, no duplicates."""

from __future__ import annotations

import multiprocessing as mp
from datetime import timedelta

import pytest

from retrainer.store import PredictionRecord, Store

from .conftest import SPECS, T0

WORKERS = 8
PER_WORKER = 2_000
BATCH = 250


def _write(url: str, worker: int, prefix: str, n: int) -> tuple[int, int]:
    store = Store.open(url)
    inserted = duplicates = 0
    try:
        for start in range(0, n, BATCH):
            records = [
                PredictionRecord(
                    request_id=f"{prefix}-{i}",
                    features={"age": float(i), "income": float(worker), "city": "x"},
                    prediction=1.0,
                    ts=T0 + timedelta(seconds=i),
                )
                for i in range(start, min(start + BATCH, n))
            ]
            # A read inside the writer's loop: with deferred write transactions this
            # read-then-write pattern is what turns into SQLITE_BUSY under contention.
            store.count_predictions("m", T0, T0 + timedelta(days=1))
            result = store.log_predictions("m", records, SPECS)
            inserted += result.inserted
            duplicates += result.duplicates
    finally:
        store.close()
    return inserted, duplicates


def _run(url: str, jobs: list[tuple[str, int, str, int]]) -> list[tuple[int, int]]:
    ctx = mp.get_context("fork")  # spawn would re-import pandas/sqlalchemy in every worker
    with ctx.Pool(len(jobs)) as pool:
        return pool.starmap(_write, jobs)


@pytest.mark.slow
def test_eight_writers_exact_counts(store: Store, store_url: str) -> None:
    results = _run(store_url, [(store_url, w, f"w{w}", PER_WORKER) for w in range(WORKERS)])
    assert results == [(PER_WORKER, 0)] * WORKERS
    total = WORKERS * PER_WORKER
    assert store.count_predictions("m", T0, T0 + timedelta(days=1)) == total == 16_000
    window = store.features_window("m", T0, T0 + timedelta(days=1), ["income"])
    assert len(window) == total
    assert sorted(window.columns["income"].tolist()) == sorted(float(w) for w in range(WORKERS) for _ in range(PER_WORKER))


def test_same_request_ids_from_two_processes_give_one_row(store: Store, store_url: str) -> None:
    results = _run(store_url, [(store_url, w, "shared", 1_000) for w in range(2)])
    assert sum(r[0] for r in results) == 1_000
    assert sum(r[1] for r in results) == 1_000
    assert store.count_predictions("m", T0, T0 + timedelta(days=1)) == 1_000
    window = store.features_window("m", T0, T0 + timedelta(days=1), ["age"])
    assert sorted(window.columns["age"].tolist()) == [float(i) for i in range(1_000)]
