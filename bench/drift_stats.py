"""Drift statistics on 20 numeric features x 1M rows: retrainer.stats vs evidently 0.7.

Run: .venv/bin/python bench/drift_stats.py [--rows N] [--features K] [--skip-evidently]

Times (wall clock, this machine):
* retrainer, production path - dataset_drift() against reference profiles built once
  (what the drift trigger does), best of 3 after a warm-up;
* retrainer, end to end - building the profiles from the raw reference frame as well;
* evidently - Report([DataDriftPreset(method="psi")]).run(current, reference), once.
retrainer computes PSI, KS (+p) and Wasserstein per feature; evidently PSI only.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import pandas as pd

from retrainer.stats import NumericReference, dataset_drift


def make_frames(rows: int, features: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(features)]
    reference = pd.DataFrame({n: rng.normal(size=rows) for n in names})
    # mild drift on 3 features: a mean shift, a scale change, a shift in a skewed feature
    current = pd.DataFrame({n: rng.normal(size=rows) for n in names})
    current["f00"] += 0.1
    current["f01"] *= 1.1
    reference["f02"] = rng.exponential(size=rows)
    current["f02"] = rng.exponential(size=rows) + 0.05
    return reference, current


def best_of(fn, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="a few seconds' worth: proves the bench runs (tests/test_benches.py); its figures mean little")
    args = parser.parse_args()
    if args.smoke:
        args.rows, args.features = 5_000, 4

    reference, current = make_frames(args.rows, args.features)
    print(f"{args.features} numeric features, reference {args.rows:,} rows, current {args.rows:,} rows, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")

    start = time.perf_counter()
    profiles = {name: NumericReference.from_values(reference[name].to_numpy()) for name in reference.columns}
    build = time.perf_counter() - start

    result = dataset_drift(profiles, current)
    ours = best_of(lambda: dataset_drift(profiles, current))
    cpu_start = time.process_time()
    dataset_drift(profiles, current)
    cpu = time.process_time() - cpu_start
    for name in ["f00", "f01", "f02", "f03"]:
        r = result.features[name]
        print(f"  {name}: psi={r.psi:.4f} ks={r.ks:.4f} p_adj={r.pvalue_adjusted:.2e} wasserstein={r.wasserstein:.4f}")
    print(f"retrainer dataset_drift (profiles prebuilt), best of 3: {ours:8.3f} s  (CPU {cpu:.3f} s over all threads)")
    print(f"retrainer profile build (once per reference):           {build:8.3f} s")
    print(f"retrainer end to end (build + drift):                    {build + ours:8.3f} s")

    if args.skip_evidently:
        return
    from evidently import Report
    from evidently.presets import DataDriftPreset

    start = time.perf_counter()
    Report([DataDriftPreset(method="psi")]).run(current, reference)
    theirs = time.perf_counter() - start
    print(f"evidently Report([DataDriftPreset(method='psi')]).run:   {theirs:8.3f} s")
    print(f"ratio evidently / retrainer: {theirs / ours:6.1f}x (prebuilt profiles), "
          f"{theirs / (build + ours):6.1f}x (end to end)")


if __name__ == "__main__":
    main()
