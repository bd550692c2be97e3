"""Orchestration overhead: the retrain flow vs the same plain functions called directly.

Both paths do the same work on the same data (load, train, evaluate candidate and champion, gate,
profile, register, stage, integration test, promote), after a warm-up run of each, on the
ephemeral Prefect API and MLflow on SQLite. Also the wall time of one monitor flow run vs the plain
check it wraps.

    .venv/bin/python bench/flow.py [--days 30] [--rows-per-day 300] [--repeats 3] [--smoke]

``--smoke``: 8 days x 120 rows, one repeat; it proves the bench runs (tests/test_benches.py), its
figures mean little.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# As the CLI does (retrainer/cli/__init__.py): a busy machine must not fail the bench at server start.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def build_world(root: Path, days: int, rows_per_day: int) -> tuple[Path, datetime]:
    from retrainer.demo.data import StreamSpec, generate_stream
    from retrainer.demo.world import demo_config, write_config, write_warehouse
    from retrainer.store import Store

    spec = StreamSpec(days=days, rows_per_day=rows_per_day, drift_day=None)
    now = spec.start + timedelta(days=days)
    path = write_config(root, demo_config(model_name="bench", rollout={"mode": "direct", "latency_budget_ms": 5000},
                                          triggers=[{"type": "schedule", "interval": "7d"}]))
    from retrainer.config import load_config

    cfg = load_config(path)
    write_warehouse(cfg.data.source.url, generate_stream(spec))
    with Store.open(cfg.store.url) as store:
        store.init()
    return path, now


def plain_retrain(config_path: Path, now: datetime, key: str) -> str:
    """The retrain flow's steps as plain function calls: no Prefect at all."""
    from retrainer.config import load_config
    from retrainer.deployments.rollout.promotion import promote
    from retrainer.profiles import build_reference_profile
    from retrainer.registry import Registry
    from retrainer.store import Store
    from retrainer.tasks import (
        LatencyRule,
        evaluate_model,
        gate,
        integration_test,
        load_training_data,
        register_candidate,
        set_challenger,
        train_model,
    )

    cfg = load_config(config_path)
    store = Store.open(cfg.store.url)
    registry = Registry.from_config(cfg)
    data = load_training_data(cfg.data, now=now, store=store, model_name=cfg.model.name)
    model = train_model(cfg.estimator, cfg.data.features, data)
    champion = store.champion(cfg.model.name)
    cand = evaluate_model(model, data.X_holdout, data.y_holdout)
    champ = evaluate_model(registry.load_model(champion, flavor="sklearn"), data.X_holdout, data.y_holdout)
    verdict = gate(cand, champ, cfg.gate)
    profile = build_reference_profile(data.X_train, cfg.data.features, registered_at=now)
    reg = register_candidate(model, registry=registry, idempotency_key=key, metrics=dict(cand),
                             reasons=["bench"], data_window=(data.window_start, data.window_end),
                             flow_run_id=None, input_example=data.X_holdout.head(5), reference_profile=profile)
    store.save_reference_profile(cfg.model.name, reg.version, profile)
    set_challenger(registry, reg.version)
    # The flow's own call (flows/retrain.py): its version, the champion it competes with, the configured rule.
    rollout = cfg.rollout
    integration_test(registry, str(reg.version), data.X_holdout.head(200), labels=sorted(set(data.y_train)),
                     champion=champion,
                     latency=LatencyRule(rollout.latency_ratio, rollout.latency_slack_ms, rollout.latency_budget_ms))
    if verdict.accepted:
        promote(registry, store, version=reg.version, expected_champion=champion, actor="bench", reason="bench")
    store.close()
    return str(reg.version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--rows-per-day", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a few seconds' worth: proves the bench runs")
    args = parser.parse_args()
    if args.smoke:
        args.days, args.rows_per_day, args.repeats = 8, 120, 1

    from retrainer.config import load_config
    from retrainer.flows.monitor import monitor
    from retrainer.flows.retrain import retrain
    from retrainer.store import Store
    from retrainer.triggers.check import run_check

    with tempfile.TemporaryDirectory() as tmp:
        config_path, now = build_world(Path(tmp), args.days, args.rows_per_day)
        t = time.perf_counter()
        retrain(config_path=str(config_path), force=True, now=now)  # warm-up; starts the ephemeral API
        print(f"first flow run (includes starting the ephemeral Prefect API and MLflow): {time.perf_counter() - t:.2f} s")
        plain_retrain(config_path, now, "bench-warmup")  # warm-up of the plain path

        flow_times, plain_times = [], []
        for i in range(args.repeats):
            t = time.perf_counter()
            out = retrain(config_path=str(config_path), force=True, now=now)
            flow_times.append(time.perf_counter() - t)
            assert out["status"] in ("success", "no_improvement"), out
            t = time.perf_counter()
            plain_retrain(config_path, now, f"bench-{i}")
            plain_times.append(time.perf_counter() - t)

        cfg = load_config(config_path)
        monitor_times, check_times = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            monitor(config_path=str(config_path), now=now)
            monitor_times.append(time.perf_counter() - t)
            with Store.open(cfg.store.url) as store:
                t = time.perf_counter()
                run_check(cfg, store=store, now=now)
                check_times.append(time.perf_counter() - t)

    fm, pm = statistics.median(flow_times), statistics.median(plain_times)
    mm, cm = statistics.median(monitor_times), statistics.median(check_times)
    rows = args.days * args.rows_per_day
    print(f"\nretrain on {rows:,} rows, median of {args.repeats} after warm-up (load average {os.getloadavg()[0]:.1f}):")
    print(f"  {'retrain flow (Prefect tasks)':<34} {fm:8.2f} s")
    print(f"  {'same plain functions':<34} {pm:8.2f} s")
    print(f"  {'ratio flow / plain':<34} {fm / pm:8.2f} x   (overhead {fm - pm:+.2f} s)")
    print(f"  {'monitor flow, one run':<34} {mm:8.2f} s")
    print(f"  {'run_check it wraps':<34} {cm:8.2f} s   (ratio {mm / cm:.1f} x)")


if __name__ == "__main__":
    main()
