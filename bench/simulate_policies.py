"""The figures of issue 13: what each retraining policy costs on real and synthetic drift.

Weather (../shared/data/weather): 30-day steps over the last 40 years of the stream, a trailing
5-year training window, labels 1 day late, HistGradientBoostingClassifier(max_iter=100) as in the
data's README. Demo stream (src/retrainer/demo/data.py): 120 days, drift from day 60, labels 1-5
days late (per row), the demo's own config and estimator, 2-day steps. For each stated
retrain/error cost ratio: never / periodic / the default threshold policy / cost_benefit / oracle
— retrains, mean F1 (per step), total cost, regret. Models are trained once per step and shared
by every policy and every cost ratio (one model cache per dataset).

    .venv/bin/python bench/simulate_policies.py [--dataset weather|demo|both] [--ratios 10,30,100] [--json F]

The policy parameters are fixed before the run and the same for every ratio (no tuning per
ratio); they are printed with the tables.
"""

from __future__ import annotations

import argparse
import os

# Hundreds of small fits: OpenMP threads (HistGradientBoosting) fighting over shared cores make
# each one ~20x slower here. One thread per fit; set before sklearn loads its thread pools.
os.environ.setdefault("OMP_NUM_THREADS", "1")
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any


from retrainer.config import parse_config
from retrainer.simulate import Costs, History, SimulationSettings, model_cache, simulate


# Threshold policy with the library's default thresholds (performance: accuracy 0.85 / f1 0.70;
# drift: PSI 0.25), its windows widened to what a one-row-a-day stream can fill.
WEATHER_THRESHOLD = [
    {"type": "performance", "window": "90d", "min_labels": 60},
    {"type": "drift", "window": "90d", "psi_threshold": 0.25, "min_samples": 60},
]
WEATHER_COST_BENEFIT = "cost_benefit:metric=accuracy;window=365d;min_samples=180;horizon=365d"
WEATHER_PERIODIC = ("periodic:30d", "periodic:90d", "periodic:365d")

DEMO_COST_BENEFIT = "cost_benefit:metric=accuracy;window=7d;min_samples=200;horizon=14d"
DEMO_PERIODIC = ("periodic:7d", "periodic:14d", "periodic:30d")


def weather_case(years: int = 40) -> tuple[Any, History, SimulationSettings, str]:
    from simulate import setup  # bench/simulate.py: the same weather config (bench/ is on sys.path)

    cfg, history, last = setup("hgb", WEATHER_THRESHOLD)
    start = last.replace(year=last.year - years)
    policies = ["never", *WEATHER_PERIODIC, "configured", WEATHER_COST_BENEFIT, "oracle"]
    settings = SimulationSettings(start=start, end=last, every=timedelta(days=30), policies=policies,
                                  label_delay=timedelta(days=1))
    return cfg, history, settings, f"weather: 30-day steps, last {years} years, trailing 5-year window, labels 1 day late"


def demo_case(days: int = 120) -> tuple[Any, History, SimulationSettings, str]:
    from retrainer.demo.data import StreamSpec, generate_stream
    from retrainer.demo.world import demo_config

    spec = StreamSpec(days=days, rows_per_day=500, drift_day=days // 2)
    frame = generate_stream(spec)
    cfg = parse_config(demo_config(), base_dir=tempfile.gettempdir())
    history = History.from_frame(frame, cfg.data, label_time_column="label_ts")
    policies = ["never", *DEMO_PERIODIC, "configured", DEMO_COST_BENEFIT, "oracle"]
    settings = SimulationSettings(start=spec.start + timedelta(days=22), end=spec.start + timedelta(days=spec.days),
                                  every=timedelta(days=2), policies=policies)
    return cfg, history, settings, (f"demo stream: {days} days x 500 rows, drift from day {days // 2}, labels 1-5 days late, "
                                   "2-day steps from day 22, the demo's config (21-day window, HGB)")


def run(case: str, ratios: list[float], smoke: bool = False) -> list[dict[str, Any]]:
    if case == "weather":
        cfg, history, base, title = weather_case(years=3 if smoke else 40)
    else:
        cfg, history, base, title = demo_case(days=34 if smoke else 120)
    cache = model_cache(cfg, history, base)
    print(f"\n## {title}")
    print(f"threshold policy (configured): {json.dumps([t.model_dump() for t in cfg.triggers])}, "
          f"policy {cfg.policy.model_dump(mode='json')}")
    out = []
    for ratio in ratios:
        began = time.perf_counter()
        settings = SimulationSettings(**{**base.__dict__, "costs": Costs(retrain_cost=ratio, error_cost=1.0)})
        result = simulate(cfg, history, settings, cache=cache)
        seconds = time.perf_counter() - began
        oracle = result.oracle.cost if result.oracle else None
        print(f"\nretrain cost / error cost = {ratio:g}  ({len(result.grid)} steps, {cache.stats.trained} models "
              f"trained so far, {seconds:.0f} s)")
        print(f"| policy | retrains | mean F1 | errors | total cost | regret | cost / oracle |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for s in result.summaries:
            print(f"| {s.policy} | {s.retrains} | {s.mean_metric:.3f} | {s.errors:,} | {s.cost:,.0f} | "
                  f"{s.regret:,.0f} | {s.cost / oracle:.2f} |")
        real = [s for s in result.summaries if s.policy != "oracle"]
        lowest = min(s.cost for s in real)
        best = ", ".join(s.policy for s in real if s.cost == lowest)
        cb = next(s for s in real if s.policy.startswith("cost_benefit"))
        print(f"lowest regret (non-oracle): {best}; cost_benefit's cost is {cb.cost / oracle - 1:+.1%} over the oracle's")
        out.append({"dataset": case, "ratio": ratio, **result.to_dict(steps=False)})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("weather", "demo", "both"), default="both")
    ap.add_argument("--ratios", default=None, help="retrain/error cost ratios (default weather 10,30,100; demo 200,1000,5000)")
    ap.add_argument("--json", type=Path, default=None, help="also write every result as JSON")
    ap.add_argument("--smoke", action="store_true",
                    help="3 years of weather, 34 demo days, one cost ratio each: proves the bench runs")
    args = ap.parse_args(argv)
    cases = ("weather", "demo") if args.dataset == "both" else (args.dataset,)
    results = []
    for case in cases:
        default = "10,30,100" if case == "weather" else "200,1000,5000"
        ratios = [float(r) for r in (args.ratios or default).split(",")]
        if args.smoke:
            ratios = ratios[:1]
        results += run(case, ratios, smoke=args.smoke)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
