"""Wall time of ``retrainer simulate`` on 40 years of real weather, and how it grows.

The replay of ../shared/data/weather (one row a day, 8 features, label `rain`) over its last 40
years, training on a trailing 5-year window, labels 1 day late, with the shared model cache:

1. 30-day and 7-day steps, policies never, periodic:90d, always, oracle;
2. growth with the number of steps (10 / 20 / 40 years of 30-day steps, and 7-day steps);
3. growth with the number of policies (1, 2, 4, 6 at 30-day steps);
4. what the cache saves: the same four policies simulated one by one (a cache each) vs together.

Figures are wall-clock seconds on this machine and ratios between them (the ratio is the result;
absolute seconds depend on the host). The estimator is LogisticRegression by default (the config
takes any sklearn class: --estimator hgb uses the data README's HistGradientBoostingClassifier).

    .venv/bin/python bench/simulate.py [--estimator lr|hgb] [--quick] [--smoke]

``--smoke`` replays 1 and 2 years instead of 10 / 20 / 40 (and 2 policies at most in part 3): it
proves the bench runs (tests/test_benches.py); its figures mean little.
"""

from __future__ import annotations

import argparse
import os

# Hundreds of small fits: OpenMP threads (HistGradientBoosting) fighting over shared cores make
# each one ~20x slower here. One thread per fit; set before sklearn loads its thread pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd

from retrainer.config import parse_config
from retrainer.simulate import History, SimulationSettings, simulate

# ../shared/data from the repository root (CI puts it there); RETRAINER_SHARED_DATA overrides it for
# a checkout elsewhere (e.g. a git worktree one level deeper).
SHARED_DATA = Path(os.environ.get("RETRAINER_SHARED_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
WEATHER = SHARED_DATA / "weather" / "weather.csv.gz"
ESTIMATORS = {
    "lr": {"class": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 500}},
    "hgb": {"class": "sklearn.ensemble.HistGradientBoostingClassifier", "params": {"max_iter": 100}},
}
FOUR = ["never", "periodic:90d", "always", "oracle"]
SIX = ["never", "periodic:90d", "periodic:30d", "configured", "always", "oracle"]


def setup(estimator: str | dict, triggers: list | None = None):
    """Weather as retrainer sees it: (config, history with labels 1 day late, end of the data).
    Shared with bench/simulate_policies.py."""
    frame = pd.read_csv(WEATHER)
    features = [c for c in frame.columns if c not in ("day", "rain")]
    cfg = parse_config({
        "model": {"name": "weather"},
        "data": {"source": {"table": "weather"}, "timestamp_column": "day", "label_column": "rain",
                 "features": [{"name": f} for f in features], "window": "1826d", "min_rows": 300},
        "estimator": ESTIMATORS[estimator] if isinstance(estimator, str) else estimator,
        "triggers": triggers or [{"type": "performance", "window": "90d", "min_labels": 60}],
        "policy": {"cooldown": "30d"},
    }, base_dir=tempfile.gettempdir())
    history = History.from_frame(frame, cfg.data, label_delay=timedelta(days=1))
    end = datetime.fromtimestamp(float(history.ts[-1]), timezone.utc) + timedelta(days=1)
    return cfg, history, end


def timed(cfg, history, end, *, years: int, every_days: int, policies: list[str]) -> dict:
    start = end.replace(year=end.year - years)
    settings = SimulationSettings(start=start, end=end, every=timedelta(days=every_days), policies=policies,
                                  label_delay=timedelta(days=1))
    began = time.perf_counter()
    result = simulate(cfg, history, settings)
    wall = time.perf_counter() - began
    asked = result.cache.trained + result.cache.hits
    return {"years": years, "every": f"{every_days}d", "steps": len(result.grid), "policies": len(policies),
            "wall_s": wall, "trained": result.cache.trained, "asked": asked, "train_s": result.cache.train_seconds}


def row(r: dict, base: float | None = None) -> str:
    ratio = "" if base is None else f"{r['wall_s'] / base:.2f}"
    return (f"| {r['years']}y | {r['every']} | {r['steps']} | {r['policies']} | {r['wall_s']:.1f} | "
            f"{1000 * r['wall_s'] / r['steps']:.0f} | {r['trained']} | {r['asked']} | {r['train_s']:.1f} | {ratio} |")


HEAD = ("| span | step | steps S | policies | wall s | ms / step | models trained | models asked for | "
        "training s | ratio |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--estimator", choices=sorted(ESTIMATORS), default="lr")
    ap.add_argument("--quick", action="store_true", help="skip the 7-day replay")
    ap.add_argument("--smoke", action="store_true", help="1-2 years instead of 10-40: proves the bench runs")
    args = ap.parse_args(argv)
    spans, longest, counts = ((1, 2), 2, (1, 2)) if args.smoke else ((10, 20, 40), 40, (1, 2, 4, 6))
    args.quick = args.quick or args.smoke
    cfg, history, end = setup(args.estimator)
    print(f"weather: {len(history)} rows to {end.date()}, estimator {cfg.estimator.class_path}, trailing 5 years, "
          "labels 1 day late\n")

    print(f"## 1-2. {longest}-year replay, and growth with the number of steps (policies: " + ", ".join(FOUR) + ")")
    print(f"ratio = wall time / the {spans[0]}-year run's\n" + HEAD)
    runs = [timed(cfg, history, end, years=y, every_days=30, policies=FOUR) for y in spans]
    if not args.quick:
        runs.append(timed(cfg, history, end, years=longest, every_days=7, policies=FOUR))
    for r in runs:
        print(row(r, runs[0]["wall_s"]), flush=True)

    print(f"\n## 3. Growth with the number of policies ({longest} years, 30-day steps; one shared cache per run)")
    print("ratio = wall time / the one-policy run's\n" + HEAD)
    grow = [timed(cfg, history, end, years=longest, every_days=30, policies=SIX[:n]) for n in counts]
    for r in grow:
        print(row(r, grow[0]["wall_s"]), flush=True)

    print("\n## 4. The model cache: the four policies one by one (a cache each) vs together")
    alone = [timed(cfg, history, end, years=longest, every_days=30, policies=[p]) for p in FOUR]
    together = next(r for r in runs if r["years"] == longest and r["every"] == "30d")
    total = sum(r["wall_s"] for r in alone)
    print(f"one by one: {total:.1f} s, {sum(r['trained'] for r in alone)} models trained; together: "
          f"{together['wall_s']:.1f} s, {together['trained']} trained; ratio together / one by one = "
          f"{together['wall_s'] / total:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
