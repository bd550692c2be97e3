"""The whole ``retrainer check`` (run_check: drift trigger, optionally performance) on SQLite
stores holding a window of 1k, 100k and 1M rows of 20 numeric features, side by side.

Targets (issue 22): the drift check reads the counts kept at ingest, so its cost does not grow
with traffic: the three sizes within 1.5x of each other, and <= 20 ms at 1M rows x 20 features.
The raw path (``read: raw``: every value of the window read back and compared) is timed next
to it. The first check after the champion appears re-bins the raw chunks once; that is timed
separately ("re-bin once").

    .venv/bin/python bench/drift.py                  # 1k / 100k / 1M rows, drift only
    .venv/bin/python bench/drift.py --smoke          # 1k / 5k rows, one run: seconds
    .venv/bin/python bench/drift.py --performance    # + the performance trigger, every row labelled
    .venv/bin/python bench/drift.py --performance --labelled 0.1   # labels for 10% of the rows
    .venv/bin/python bench/drift.py --rows 200000   # one size

The store is built with Store.log_prediction_frame in batches (not timed). The timed part is
what the monitor flow runs: the champion from the store, the context, the histogram (or raw
features) window read, 20 features x (PSI, KS, Wasserstein, p-values), the audit rows; each
run opens a cold Store, as one ``retrainer check`` process does. The in-memory 1M x 20 comparison with evidently is bench/drift_stats.py.
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

from retrainer.config import FeatureSpec, parse_config
from retrainer.profiles import build_reference_profile
from retrainer.store import LabelRecord, Store
from retrainer.triggers.check import run_check

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def build(url: str, rows: int, n_features: int, labelled: float) -> list[FeatureSpec]:
    specs = [FeatureSpec(name=f"f{j:02d}") for j in range(n_features)]
    store = Store.open(url, max_batch=100_000)
    store.init()
    rng = np.random.default_rng(0)
    train = pd.DataFrame({s.name: rng.normal(size=100_000) for s in specs})
    store.save_reference_profile("bench", "1", build_reference_profile(train, specs, model_version="1",
                                                                       registered_at=T0 - timedelta(days=1)))
    store.champion_cas("bench", None, "1")
    span = 86_400.0  # the 1M rows fall within one day: the drift window
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        offsets = (np.arange(start, start + n) / rows) * span
        frame = pd.DataFrame({
            "request_id": [f"r{i}" for i in range(start, start + n)],
            "ts": pd.Timestamp(T0) + pd.to_timedelta(offsets, unit="s"),
            "prediction": rng.integers(0, 2, n).astype(float), "score": rng.random(n), "model_version": "1",
            # one feature drifts by 0.3 SD so the check has something to report
            **{s.name: rng.normal(size=n) + (0.3 if s.name == "f07" else 0.0) for s in specs},
        })
        store.log_prediction_frame("bench", frame, specs)
        if labelled > 0:
            pick = frame.sample(frac=labelled, random_state=start)
            # Each label a second after its prediction (a label is never older than what it labels).
            store.log_labels([LabelRecord(r, float(y), ts.to_pydatetime() + timedelta(seconds=1))
                              for r, y, ts in zip(pick["request_id"], pick["prediction"], pick["ts"])],
                             received_at=T0 + timedelta(days=1))
    store.close()
    return specs


def time_checks(url: str, specs: list[FeatureSpec], read: str, repeat: int, extra: list[dict]) -> tuple[list[float], object]:
    triggers = [{"type": "drift", "window": "1d", "min_samples": 1000, "read": read}, *extra]
    cfg = parse_config({"model": {"name": "bench"}, "store": {"url": url},
                        "data": {"features": [s.model_dump() for s in specs]}, "triggers": triggers})
    now = T0 + timedelta(days=1)
    times, cpu, result = [], [], None
    for _ in range(repeat):
        store = Store.open(url)  # a cold Store each time, as one `retrainer check` process has
        t, c = time.perf_counter(), time.process_time()
        result = run_check(cfg, store=store, now=now)
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        store.close()
    CPU[read] = CPU.get(read, []) + [statistics.median(cpu)]
    return times, result


CPU: dict[str, list[float]] = {}  # median process CPU time per size, by read path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, action="append", help="window size (repeatable; default 1k, 100k, 1M)")
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--performance", action="store_true", help="also run the performance trigger")
    ap.add_argument("--labelled", type=float, default=1.0, help="with --performance: fraction of rows labelled")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--smoke", action="store_true", help="1k and 5k rows, two runs each: seconds")
    args = ap.parse_args()
    sizes = args.rows or ([1_000, 5_000] if args.smoke else [1_000, 100_000, 1_000_000])
    repeat = 2 if args.smoke else args.repeat
    extra = [{"type": "performance", "window": "1d", "min_labels": 100}] if args.performance else []
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in sizes:
            url = f"sqlite:///{Path(tmp) / f'bench-{rows}.db'}"
            t = time.perf_counter()
            specs = build(url, rows, args.features, args.labelled if args.performance else 0.0)
            built = time.perf_counter() - t
            first, _ = time_checks(url, specs, "auto", 1, extra)  # re-bins the raw chunks once
            hist, result = time_checks(url, specs, "auto", repeat, extra)
            raw, _ = time_checks(url, specs, "raw", max(1, repeat // 3), extra)
            drift = {d.trigger: d for d in result.children}["drift"]  # type: ignore[attr-defined]
            assert drift.evidence["read"] == "histograms", drift.evidence
            rows_out.append((rows, built, first[0], statistics.median(hist), min(hist), statistics.median(raw), drift))
    print(f"run_check, drift trigger over a 1-day window of {args.features} numeric features; median of {repeat} cold runs")
    print("(wall clock; 'cpu' is the process CPU time of the same runs: on a shared host the wall clock also holds "
          "waits for the disk and for other processes)")
    print(f"{'rows':>10} | {'ingest':>8} | {'re-bin once':>11} | {'histograms':>10} | {'best':>7} | {'cpu':>7} | "
          f"{'raw path':>9} | {'raw cpu':>8} | raw/hist")
    for i, (rows, built, first, med, best, raw_med, _) in enumerate(rows_out):
        print(f"{rows:>10,} | {built:>6.1f} s | {first * 1000:>8.0f} ms | {med * 1000:>7.1f} ms | {best * 1000:>4.1f} ms | "
              f"{CPU['auto'][2 * i + 1] * 1000:>4.1f} ms | {raw_med * 1000:>6.0f} ms | {CPU['raw'][i] * 1000:>5.0f} ms | "
              f"{raw_med / med:>6.1f}x")
    meds = [r[3] for r in rows_out]
    cpus = CPU["auto"][1::2]
    print(f"largest / smallest histogram check: {max(meds) / min(meds):.2f}x wall, {max(cpus) / min(cpus):.2f}x cpu "
          f"(target <= 1.5x); at {rows_out[-1][0]:,} rows {meds[-1] * 1000:.1f} ms wall, {cpus[-1] * 1000:.1f} ms cpu "
          "(target <= 20 ms at 1M x 20)")
    drift = rows_out[-1][-1]
    print(f"  verdict at {rows_out[-1][0]:,} rows: {drift.reason}")
    if args.performance:
        perf = {d.trigger: d for d in result.children}["performance"]  # type: ignore[attr-defined]
        print(f"  labelled rows: {perf.evidence['n_labelled']:,}; verdict: {perf.reason}")


if __name__ == "__main__":
    main()
