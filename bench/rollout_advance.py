"""The rollout flow's real ``advance`` over simulated shadow traffic: days to a decision and the
decision, per traffic and true difference, with labels days late and one look a day.

Each run is a fresh SQLite store, an in-memory alias registry
(:class:`retrainer.testing.shadow.AliasRegistry`) and :class:`retrainer.testing.shadow.ShadowWorld`:
two calibrated binary classifiers (the champion at ``--base`` accuracy, the challenger at base + Δ)
answering every request, their scores and shadow rows stored as the shadow worker writes them,
each version's calibration map saved as at registration, labels arriving ``--delay`` days late.
The offline prior is Δ_off = Δ ± 0.02 (an honest holdout). Nothing is timed: the figures are days
of simulated time and the share of runs per outcome, side by side across cells.

    python bench/rollout_advance.py             # 5 runs per cell, a few minutes
    python bench/rollout_advance.py --smoke     # 1 run of two cells, seconds
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from retrainer.config import RetrainerConfig
from retrainer.deployments.rollout.advance import admit_challenger, advance
from retrainer.deployments.rollout.promotion import promote
from retrainer.store import Store
from retrainer.testing.shadow import AliasRegistry, ShadowWorld, record_offline_delta

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def one_run(root: Path, seed: int, *, per_day: int, delta: float, base: float, delay: int, max_days: int) -> tuple[str, int]:
    """(outcome, day it was decided) of one rollout; ("undecided", max_days) if none."""
    db = root / f"run-{seed}-{per_day}-{delta:+.3f}.db"
    cfg = RetrainerConfig.model_validate({
        "model": {"name": "m"}, "store": {"url": f"sqlite:///{db}"},
        "data": {"source": {"table": "t"}, "features": [{"name": "x"}]},
        "rollout": {"mode": "auto", "shadow": {"duration": "1d", "min_comparisons": min(200, per_day)},
                    "guard": {"enabled": False}, "decision": {"max_duration": f"{max_days}d"}},
    })
    with Store.open(cfg.store.url) as store:
        store.init()
        record_offline_delta(store, "m", "2", delta, 0.02, at=T0 - timedelta(hours=1))
        registry = AliasRegistry("m")
        promote(registry, store, version="1", expected_champion=None, actor="bench", reason="first", at=T0 - timedelta(days=1))  # type: ignore[arg-type]
        world = ShadowWorld(store, "m", "1", "2", np.random.default_rng(seed), label_delay=timedelta(days=delay))
        world.calibrations()
        admit_challenger(cfg, store, registry, version="2", now=T0)  # type: ignore[arg-type]
        for d in range(max_days):
            day = T0 + timedelta(days=d)
            world.day(day, per_day, champion_acc=base, challenger_acc=base + delta)
            world.deliver(day + timedelta(days=1))
            step = advance(cfg, store, registry, day + timedelta(days=1))  # type: ignore[arg-type]
            if step.action in ("promoted", "rejected"):
                return step.action, d + 1
    return "undecided", max_days


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--base", type=float, default=0.78, help="the champion's accuracy")
    ap.add_argument("--delay", type=int, default=3, help="label delay in days")
    ap.add_argument("--max-days", type=int, default=42)
    ap.add_argument("--smoke", action="store_true", help="1 run of two cells (seconds)")
    args = ap.parse_args(argv)
    cells = [(200, 0.07), (200, -0.10)] if args.smoke else [
        (t, d) for t in (50, 200, 1000) for d in (0.07, 0.02, 0.0, -0.02, -0.10)]
    runs = 1 if args.smoke else args.runs
    print(f"{'req/day':>8} {'true Δ':>7} {'promoted':>9} {'rejected':>9} {'undecided':>10} {'median days':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for per_day, delta in cells:
            out = [one_run(Path(tmp), seed, per_day=per_day, delta=delta, base=args.base, delay=args.delay,
                           max_days=args.max_days) for seed in range(runs)]
            share = {k: sum(o == k for o, _ in out) / runs for k in ("promoted", "rejected", "undecided")}
            days = statistics.median(d for _, d in out)
            print(f"{per_day:>8} {delta:>+7.2f} {share['promoted']:>9.0%} {share['rejected']:>9.0%} "
                  f"{share['undecided']:>10.0%} {days:>12g}")
    print(f"labels {args.delay} days late, champion accuracy {args.base}, offline prior Δ ± 0.02, one look a day, "
          f"rollout.decision defaults (min_labelled 500, max_duration {args.max_days}d)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
