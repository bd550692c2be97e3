"""Does `cost_benefit` with its defaults pay? Its cost against never / periodic / the oracle (issues 13, 21).

Weather (../shared/data/weather, or $RETRAINER_SHARED_DATA/weather): two 20-year periods (the last
40 years of the stream, split), 30-day steps, a trailing 5-year training window, labels 1 day late,
HistGradientBoostingClassifier(max_iter=100) as in the data's README; retrain/error cost ratios 5,
50, 200. Demo stream (src/retrainer/demo/data.py): 120 days x 500 rows, drift from day 60, labels
1-5 days late (per row), the demo's own config, 2-day steps; ratios 200, 1000, 5000.

`cost_benefit` is given only the two costs (every other parameter at its default). The goal per
cell: the lowest cost of never / the periodic baselines, and at most 1.2x the oracle's. Every cell
is printed, misses included, then one summary table. Models are trained once per step and shared
by every policy and ratio (one model cache per period).

    .venv/bin/python bench/simulate_policies.py [--dataset weather|demo|both] [--cells C | --held-out] [--json F] [--smoke]

--cells: only these cells, CASE:RATIO comma-separated, CASE weather-YYYY (the 20-year period from
YYYY: weather-1958 and weather-1978 are the goal's), demo, or demo-SEED-DRIFT (the demo stream drawn
with another seed, drifting from another day), e.g. ``--cells weather-1958:5,demo:200`` (the
baselines and the oracle are still computed for each chosen cell; models are trained only for the
cases named). --held-out: 15 cells the rule was not chosen on (weather 1954-1974 and 1974-1994;
the demo stream with seeds 1, 2, 3 drifting from days 60, 45, 90), each at its three ratios. --smoke: the demo stream only, 30 days, two ratios (seconds): the script runs end to end.
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


WEATHER_BASELINES = ("never", "periodic:90d", "periodic:365d")
DEMO_BASELINES = ("never", "periodic:7d", "periodic:14d", "periodic:30d")
WEATHER_RATIOS = (5.0, 50.0, 200.0)
DEMO_RATIOS = (200.0, 1000.0, 5000.0)
COST_BENEFIT = "cost_benefit"  # only --retrain-cost / --error-cost reach it (the simulation's costs)


def weather_cases(periods: list[int] | None = None) -> list[tuple[str, Any, History, SimulationSettings]]:
    """20-year periods: by default the last 40 years of the stream in two; or those starting in the
    years ``periods`` (on the same day of the year)."""
    from simulate import setup  # bench/simulate.py: the same weather config (bench/ is on sys.path)

    cfg, history, last = setup("hgb")
    starts = [last.year - 40, last.year - 20] if periods is None else periods
    policies = [*WEATHER_BASELINES, COST_BENEFIT, "oracle"]
    out = []
    for year in starts:
        a = last.replace(year=year)
        b = a.replace(year=year + 20)
        if b > last or year < 1954:  # 1949 + the 5-year training window
            raise SystemExit(f"weather-{year}: a 20-year period must start in 1954..{last.year - 20}")
        settings = SimulationSettings(start=a, end=b, every=timedelta(days=30), policies=policies,
                                      label_delay=timedelta(days=1), train_window=timedelta(days=1826))
        out.append((f"weather {a.year}-{b.year}", cfg, history, settings))
    return out


def demo_case(days: int = 120, *, seed: int = 7, drift_day: int | None = None) -> tuple[Any, History, SimulationSettings, str]:
    from retrainer.demo.data import StreamSpec, generate_stream
    from retrainer.demo.world import demo_config

    drift = days // 2 if drift_day is None else drift_day
    spec = StreamSpec(days=days, rows_per_day=500, drift_day=drift, seed=seed)
    frame = generate_stream(spec)
    cfg = parse_config(demo_config(), base_dir=tempfile.gettempdir())
    history = History.from_frame(frame, cfg.data, label_time_column="label_ts")
    policies = [*DEMO_BASELINES, COST_BENEFIT, "oracle"]
    settings = SimulationSettings(start=spec.start + timedelta(days=22), end=spec.start + timedelta(days=spec.days),
                                  every=timedelta(days=2), policies=policies)
    name = "demo stream" if (seed, drift) == (7, days // 2) else f"demo seed {seed} drift {drift}"
    return cfg, history, settings, (f"{name}: {days} days x 500 rows, drift from day {drift}, labels 1-5 days "
                                    "late, 2-day steps from day 22, the demo's config (21-day window, HGB)")


def run_case(title: str, cfg: Any, history: History, base: SimulationSettings, ratios: tuple[float, ...],
             baselines: tuple[str, ...]) -> list[dict[str, Any]]:
    cache = model_cache(cfg, history, base)
    print(f"\n## {title}")
    out = []
    for ratio in ratios:
        began = time.perf_counter()
        settings = SimulationSettings(**{**base.__dict__, "costs": Costs(retrain_cost=ratio, error_cost=1.0)})
        result = simulate(cfg, history, settings, cache=cache)
        seconds = time.perf_counter() - began
        by = {s.policy: s for s in result.summaries}
        oracle = by["oracle"].cost
        print(f"\nretrain cost / error cost = {ratio:g}  ({len(result.grid)} steps, {cache.stats.trained} models "
              f"trained so far, {seconds:.0f} s)")
        print("| policy | retrains | errors | cost | regret | cost / oracle | no data |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for s in result.summaries:
            print(f"| {s.policy} | {s.retrains} | {s.errors:,} | {s.cost:,.0f} | {s.regret:,.0f} | "
                  f"{s.cost / oracle:.2f} | {s.undecided_share:.0%} |")
        cb = by[COST_BENEFIT]
        best = min(by[b].cost for b in baselines)
        lowest, within = cb.cost <= best, cb.cost <= 1.2 * oracle
        print(f"cost_benefit: {'lowest' if lowest else 'NOT lowest'} of {', '.join(baselines)} "
              f"({cb.cost:,.0f} vs {best:,.0f}); {cb.cost / oracle:.2f}x the oracle ({'met' if within else 'MISSED'})")
        out.append({"case": title, "ratio": ratio, "cost_benefit": cb.cost, "retrains": cb.retrains,
                    "best_baseline": best, "best_baseline_policy": min(baselines, key=lambda b: by[b].cost),
                    "oracle": oracle, "oracle_retrains": by["oracle"].retrains, "lowest": lowest, "within_1_2": within,
                    "costs": {p: by[p].cost for p in by}, "result": result.to_dict(steps=False)})
    return out


HELD_OUT = ("weather-1954:5,weather-1954:50,weather-1954:200,weather-1974:5,weather-1974:50,weather-1974:200,"
            + ",".join(f"demo-{seed}-{drift}:{r:g}" for seed, drift in ((1, 60), (2, 45), (3, 90)) for r in DEMO_RATIOS))


def parse_cells(text: str) -> dict[str, tuple[float, ...]]:
    """``weather-1958:5,demo:200`` -> {"weather-1958": (5.0,), "demo": (200.0,)} (case -> ratios, in order).
    Cases: ``weather-YYYY`` (the 20-year period from YYYY), ``demo`` (the stream of the goal) and
    ``demo-SEED-DRIFT`` (the same stream drawn with another seed, drifting from another day)."""
    out: dict[str, list[float]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        case, sep, ratio = part.partition(":")
        try:
            value = float(ratio)
        except ValueError:
            value = -1.0
        demo = case == "demo" or (case.startswith("demo-") and all(x.isdigit() for x in case[5:].split("-"))
                                  and case.count("-") == 2)
        if not sep or value < 0 or not (demo or (case.startswith("weather-") and case[8:].isdigit())):
            raise SystemExit(f"--cells: {part!r} is not CASE:RATIO (e.g. weather-1958:5, demo:200 or demo-1-60:200)")
        out.setdefault(case, []).append(value)
    return {k: tuple(v) for k, v in out.items()}


def summary(rows: list[dict[str, Any]]) -> None:
    print("\n## cost_benefit with only the two costs set, every cell")
    print("| case | retrain/error | never | best periodic | oracle (retrains) | cost_benefit (retrains) | x oracle | lowest? | <= 1.2x? |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        periodic = {p: c for p, c in r["costs"].items() if p.startswith("periodic")}
        best_p = min(periodic, key=periodic.get)
        print(f"| {r['case'].split(':')[0]} | {r['ratio']:g} | {r['costs']['never']:,.0f} | {periodic[best_p]:,.0f} ({best_p}) | "
              f"{r['oracle']:,.0f} ({r['oracle_retrains']}) | {r['cost_benefit']:,.0f} ({r['retrains']}) | "
              f"{r['cost_benefit'] / r['oracle']:.2f} | {'yes' if r['lowest'] else 'NO'} | "
              f"{'yes' if r['within_1_2'] else 'NO'} |")
    met = sum(r["lowest"] and r["within_1_2"] for r in rows)
    print(f"\nboth goals met in {met} of {len(rows)} cells")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", choices=("weather", "demo", "both"), default="both")
    ap.add_argument("--cells", default=None, help="only these cells, e.g. weather-1958:5,demo:200")
    ap.add_argument("--held-out", action="store_true", help="the 15 cells the rule was not chosen on: weather "
                    "1954-1974 and 1974-1994, the demo stream drawn with seeds 1-3 drifting from days 60/45/90")
    ap.add_argument("--json", type=Path, default=None, help="also write every result as JSON")
    ap.add_argument("--smoke", action="store_true", help="demo stream only, 30 days, two ratios: seconds")
    args = ap.parse_args(argv)
    rows: list[dict[str, Any]] = []
    if args.smoke:
        cfg, history, settings, title = demo_case(days=30)
        rows += run_case(title, cfg, history, settings, (200.0, 5000.0), DEMO_BASELINES)
    else:
        cells = parse_cells(HELD_OUT if args.held_out else args.cells) if (args.cells or args.held_out) else None
        periods = None if cells is None else [int(c[8:]) for c in cells if c.startswith("weather-")]
        if args.dataset in ("weather", "both") and (periods is None or periods):
            for title, cfg, history, settings in weather_cases(periods):
                ratios = WEATHER_RATIOS if cells is None else cells[f"weather-{settings.start.year}"]
                rows += run_case(title, cfg, history, settings, ratios, WEATHER_BASELINES)
        demos = ["demo"] if cells is None else [c for c in cells if c.startswith("demo")]
        if args.dataset in ("demo", "both"):
            for case in demos:
                seed, drift = (7, None) if case == "demo" else map(int, case[5:].split("-"))
                cfg, history, settings, title = demo_case(seed=seed, drift_day=drift)
                ratios = DEMO_RATIOS if cells is None else cells[case]
                rows += run_case(title, cfg, history, settings, ratios, DEMO_BASELINES)
    summary(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
