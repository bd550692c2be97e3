"""Store benchmark: prediction ingest rate and the drift check's 1M-row window read.

    .venv/bin/python bench/store.py                     # SQLite + a throwaway PostgreSQL
    .venv/bin/python bench/store.py --rows 200000 --no-pg
    .venv/bin/python bench/store.py --pg-url postgresql://user@host/db   # an existing server
    .venv/bin/python bench/store.py --compaction --no-pg  # + 1M rows in 200-row batches, read before/after compaction
    .venv/bin/python bench/store.py --histograms --skip-main --no-pg   # ingest with / without histogram counting
    .venv/bin/python bench/store.py --smoke               # seconds: small sizes, SQLite only, every case

Ingest goes through Store.log_prediction_frame (validation + dedup insert + feature chunk)
in batches; the read is Store.features_window over the whole window, all feature columns.
Figures are printed next to the targets (>= 50,000 rows/s into SQLite; 1M x 20 read < 2 s)
and the reference figures for a row-per-record read of the same data measured on this machine
(pandas.read_sql ~9 s, raw sqlite3 fetch ~3.6 s).

``--histograms``: the cost of counting at ingest (issue 22: at most 10% fewer rows/s). Two models
in one store get the same batches, alternating batch by batch so both see the same machine: one
whose champion has frozen histogram bins (every batch is also counted on them, in its
transaction), one with no champion (nothing counted).
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


def run_compaction(url: str, label: str, rows: int, batch: int, n_features: int, reads: int) -> dict[str, float]:
    """A writer that flushes small batches: window read before and after Store.compact_chunks."""
    specs = [FeatureSpec(name=f"f{j:02d}") for j in range(n_features)]
    store = Store.open(url, max_batch=max(batch, 50_000))
    store.init()
    t = time.perf_counter()
    for frame in frames(rows, batch, n_features, seed=1):
        store.log_prediction_frame("small", frame, specs)
    ingest = time.perf_counter() - t
    end = T0 + timedelta(seconds=rows)
    columns = [s.name for s in specs]

    def reads_of() -> list[float]:
        times = []
        for _ in range(reads):
            t = time.perf_counter()
            window = store.features_window("small", T0, end, columns)
            times.append(time.perf_counter() - t)
            assert len(window) == rows
        return times

    before = reads_of()
    reference = store.features_window("small", T0, end, columns)
    t = time.perf_counter()
    result = store.compact_chunks("small")
    compact = time.perf_counter() - t
    after = reads_of()
    again = store.features_window("small", T0, end, columns)
    assert again.prediction_ids.tobytes() == reference.prediction_ids.tobytes()
    assert all(again.columns[c].tobytes() == reference.columns[c].tobytes() for c in columns)
    store.close()
    print(
        f"{label:<11} {rows:,} rows ingested in {batch}-row batches ({ingest:.0f} s, {rows / ingest:,.0f} rows/s) | "
        f"window read {rows:,} x {n_features} with {result.chunks_before:,} chunks: first {before[0]:.2f} s, "
        f"median {statistics.median(before):.2f} s | compaction to {result.chunks_after:,} chunks {compact:.1f} s | "
        f"read after: first {after[0]:.2f} s, median {statistics.median(after):.2f} s (identical arrays)"
    )
    return {"before_median_s": statistics.median(before), "after_median_s": statistics.median(after), "compact_s": compact}


def _champion_with_bins(store: Store, model: str, specs: list[FeatureSpec]) -> None:
    from retrainer.profiles import build_reference_profile

    rng = np.random.default_rng(7)
    train = pd.DataFrame({s.name: rng.normal(size=50_000) for s in specs})
    store.save_reference_profile(model, "1", build_reference_profile(train, specs, model_version="1"))
    store.champion_cas(model, None, "1")
    assert store.ensure_histograms(model, "1") is not None


def run_histograms(url: str, label: str, rows: int, batch: int, n_features: int, reads: int) -> dict[str, float]:
    """Ingest rate with and without histogram counting, interleaved batch by batch."""
    specs = [FeatureSpec(name=f"f{j:02d}") for j in range(n_features)]
    store = Store.open(url, max_batch=max(batch, 50_000))
    store.init()
    _champion_with_bins(store, "counted", specs)
    spent = {"plain": 0.0, "counted": 0.0}
    cpu = {"plain": 0.0, "counted": 0.0}
    for i, frame in enumerate(frames(rows, batch, n_features, seed=2)):
        for name in (("plain", "counted") if i % 2 == 0 else ("counted", "plain")):
            renamed = frame.assign(request_id=name + "-" + frame["request_id"])
            t, c = time.perf_counter(), time.process_time()
            store.log_prediction_frame(name, renamed, specs)
            spent[name] += time.perf_counter() - t
            cpu[name] += time.process_time() - c
    counted = store.feature_histograms("counted", "1", T0, T0 + timedelta(seconds=rows + 7200))
    store.close()
    rate = {name: rows / s for name, s in spent.items()}
    ratio = rate["counted"] / rate["plain"]
    cpu_ratio = cpu["plain"] / cpu["counted"]
    print(f"{label:<11} ingest with histograms {rate['counted']:>9,.0f} rows/s | without {rate['plain']:>9,.0f} rows/s | "
          f"ratio {ratio:.3f} ({(1 - ratio) * 100:+.1f}% slower; target <= 10%); by process CPU time {cpu_ratio:.3f} "
          f"({(1 - cpu_ratio) * 100:+.1f}%) | {rows:,} rows, batches of {batch:,}, "
          f"{n_features} features, interleaved; whole hours counted: {0 if counted is None else counted.n_rows:,} rows")
    return {"with": rate["counted"], "without": rate["plain"], "ratio": ratio}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=5_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--reads", type=int, default=3)
    ap.add_argument("--pg-url", help="use this PostgreSQL database instead of starting a throwaway server")
    ap.add_argument("--no-pg", action="store_true", help="SQLite only")
    ap.add_argument("--compaction", action="store_true", help="also: 1M rows in small batches, read before/after compaction")
    ap.add_argument("--small-batch", type=int, default=200, help="batch size of the compaction case")
    ap.add_argument("--histograms", action="store_true", help="also: ingest with / without histogram counting")
    ap.add_argument("--skip-main", action="store_true", help="only the extra cases")
    ap.add_argument("--smoke", action="store_true", help="seconds: 20k rows, SQLite only, every case")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.no_pg, args.compaction, args.histograms, args.reads = 20_000, True, True, True, 1
    cases = (([] if args.skip_main else [run]) + ([run_compaction] if args.compaction else [])
             + ([run_histograms] if args.histograms else []))

    def bench(url: str, label: str) -> None:
        for case in cases:
            batch = args.small_batch if case is run_compaction else args.batch
            if case is run_compaction and url.startswith("sqlite"):
                url = url.replace("bench.db", "small.db")
            case(url, label, args.rows, batch, args.features, args.reads)

    print(f"targets: SQLite ingest >= 50,000 rows/s; {args.rows:,} x {args.features} window read well under 2 s")
    print("reference (row-per-record layout, same machine): pandas.read_sql 1M x 20 ~9 s, raw sqlite3 fetch ~3.6 s")
    with tempfile.TemporaryDirectory() as tmp:
        bench(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite")
    if args.no_pg:
        return
    if args.pg_url:
        bench(args.pg_url, "PostgreSQL")
        return
    from retrainer.store.pgserver import TemporaryPostgres, pg_bindir

    if pg_bindir() is None:
        print("PostgreSQL   skipped: no initdb/pg_ctl found (pass --pg-url to use a running server)")
        return
    with TemporaryPostgres(durable=True) as pg:  # fsync on: figures comparable to a real server
        bench(pg.url(), "PostgreSQL")


if __name__ == "__main__":
    main()
