"""Store benchmark: prediction ingest rate and the drift check's 1M-row window read.

    .venv/bin/python bench/store.py                     # SQLite + a throwaway PostgreSQL
    .venv/bin/python bench/store.py --rows 200000 --no-pg
    .venv/bin/python bench/store.py --pg-url postgresql://user@host/db   # an existing server

Ingest goes through Store.log_prediction_frame (validation + dedup insert + feature chunk)
in batches; the read is Store.features_window over the whole window, all feature columns.
Figures are printed next to the targets (>= 50,000 rows/s into SQLite; 1M x 20 read < 2 s)
and the reference figures for a row-per-record read of the same data measured on this machine
(pandas.read_sql ~9 s, raw sqlite3 fetch ~3.6 s).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from retrainer.config import FeatureSpec
from retrainer.store import Store

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def frames(rows: int, batch: int, n_features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    names = [f"f{j:02d}" for j in range(n_features)]
    for start in range(0, rows, batch):
        n = min(batch, rows - start)
        data = {
            "request_id": [f"r{i}" for i in range(start, start + n)],
            "ts": pd.Timestamp(T0) + pd.to_timedelta(np.arange(start, start + n), unit="s"),
            "prediction": rng.integers(0, 2, n).astype(float),
            "score": rng.random(n),
            "model_version": "1",
        }
        data.update({name: rng.normal(size=n) for name in names})
        yield pd.DataFrame(data)


def run(url: str, label: str, rows: int, batch: int, n_features: int, reads: int) -> dict[str, float]:
    specs = [FeatureSpec(name=f"f{j:02d}") for j in range(n_features)]
    store = Store.open(url, max_batch=max(batch, 50_000))
    store.init()
    prepared = list(frames(rows, batch, n_features))  # build frames outside the timed loop
    t = time.perf_counter()
    for frame in prepared:
        store.log_prediction_frame("bench", frame, specs)
    ingest = time.perf_counter() - t
    end = T0 + timedelta(seconds=rows)
    columns = [s.name for s in specs]
    times = []
    for _ in range(reads):
        t = time.perf_counter()
        window = store.features_window("bench", T0, end, columns)
        times.append(time.perf_counter() - t)
        assert len(window) == rows and len(window.columns) == n_features
    t = time.perf_counter()
    one = store.features_window("bench", T0, end, columns[:1])
    one_col = time.perf_counter() - t
    assert len(one) == rows
    t = time.perf_counter()
    resend = store.log_prediction_frame("bench", prepared[0], specs)
    dup_time = time.perf_counter() - t
    assert resend.inserted == 0
    store.close()
    out = {
        "rows": rows,
        "ingest_rows_per_s": rows / ingest,
        "read_first_s": times[0],
        "read_median_s": statistics.median(times),
        "read_one_column_s": one_col,
        "resend_batch_s": dup_time,
    }
    print(
        f"{label:<11} ingest {out['ingest_rows_per_s']:>9,.0f} rows/s ({rows:,} rows, batches of {batch:,}, "
        f"{n_features} float features) | window read {rows:,} x {n_features}: first {times[0]:.2f} s, "
        f"median {out['read_median_s']:.2f} s of {reads} | 1 column {one_col:.2f} s | "
        f"re-send of one batch (all duplicates) {dup_time * 1000:.0f} ms"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--reads", type=int, default=3)
    ap.add_argument("--pg-url", help="use this PostgreSQL database instead of starting a throwaway server")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = ap.parse_args()

    print(f"targets: SQLite ingest >= 50,000 rows/s; {args.rows:,} x {args.features} window read well under 2 s")
    print("reference (row-per-record layout, same machine): pandas.read_sql 1M x 20 ~9 s, raw sqlite3 fetch ~3.6 s")
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite", args.rows, args.batch, args.features, args.reads)
    if args.no_pg:
        return
    if args.pg_url:
        run(args.pg_url, "PostgreSQL", args.rows, args.batch, args.features, args.reads)
        return
    from retrainer.store.pgserver import TemporaryPostgres, pg_bindir

    if pg_bindir() is None:
        print("PostgreSQL   skipped: no initdb/pg_ctl found (pass --pg-url to use a running server)")
        return
    with TemporaryPostgres(durable=True) as pg:  # fsync on: figures comparable to a real server
        run(pg.url(), "PostgreSQL", args.rows, args.batch, args.features, args.reads)


if __name__ == "__main__":
    main()
