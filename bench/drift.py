"""The whole ``retrainer check`` (run_check: drift trigger, optionally performance) on a SQLite
store holding a 1M-row window of 20 numeric features. Target: under 2 s.

    .venv/bin/python bench/drift.py                  # 1M rows, drift only
    .venv/bin/python bench/drift.py --performance    # + the performance trigger, every row labelled
    .venv/bin/python bench/drift.py --performance --labelled 0.1   # labels for 10% of the rows
    .venv/bin/python bench/drift.py --rows 200000

The store is built with Store.log_prediction_frame in batches (not timed). The timed part is
what the monitor flow runs: champion + reference profile from the store, the context, the
features window read, 20 features x (PSI, KS, Wasserstein) against a 12,000-value reference
sample, the audit rows. The in-memory 1M x 20 comparison with evidently is bench/drift_stats.py.
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--performance", action="store_true", help="also run the performance trigger")
    ap.add_argument("--labelled", type=float, default=1.0, help="with --performance: fraction of rows labelled")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--smoke", action="store_true", help="a few seconds' worth: proves the bench runs (tests/test_benches.py); its figures mean little")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.features, args.repeat, args.performance = 5_000, 3, 1, True
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        t = time.perf_counter()
        specs = build(url, args.rows, args.features, args.labelled if args.performance else 0.0)
        print(f"built store: {args.rows:,} rows x {args.features} features in {time.perf_counter() - t:.1f} s")
        triggers = [{"type": "drift", "window": "1d", "min_samples": 1000}]
        if args.performance:
            triggers.append({"type": "performance", "window": "1d", "min_labels": 100})
        cfg = parse_config({"model": {"name": "bench"}, "store": {"url": url},
                            "data": {"features": [s.model_dump() for s in specs]}, "triggers": triggers})
        now = T0 + timedelta(days=1)
        times = []
        for _ in range(args.repeat):
            store = Store.open(url)  # a cold Store each time, as one `retrainer check` process has
            t = time.perf_counter()
            result = run_check(cfg, store=store, now=now)
            times.append(time.perf_counter() - t)
            store.close()
        drift = {d.trigger: d for d in result.children}["drift"]
        print(f"run_check ({', '.join(d.trigger for d in result.children)}): "
              f"median {statistics.median(times):.2f} s, best {min(times):.2f} s over {args.repeat} runs "
              f"(target < 2 s)")
        print(f"  window rows: {drift.evidence['n_current']:,}; verdict: {drift.reason}")
        if args.performance:
            perf = {d.trigger: d for d in result.children}["performance"]
            print(f"  labelled rows: {perf.evidence['n_labelled']:,}; verdict: {perf.reason}")


if __name__ == "__main__":
    main()
