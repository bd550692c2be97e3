"""Wall and CPU time of one ``retrainer check`` process on a small window (issue 20: goal <= 1.2 s).

A world in a temp dir: the demo config, MLflow on SQLite with version 1 registered and the
``champion`` alias on it, the store naming version 1 as champion with its reference profile, and
``--days`` of the demo stream (120 predictions a day, labelled) in the inference log. Each round
runs, back to back and in rotating order, the whole ``retrainer check --no-audit --json --at``
(the end of the stream: its window holds the predictions and labels)
process, the floor every CLI process pays (``python -c "import retrainer.cli"``) and what the
check used to add by resolving the champion through MLflow (``python -c "import mlflow"``, 1.25
s of the 2.7 s the issue measured); medians are printed with ratios, and whether the check
process imported MLflow (it should not: the store names the champion and the alias agrees).

    .venv/bin/python bench/check.py [--rounds 7] [--days 7] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

_PROBE = """
import json, sys
from retrainer.cli import main
code = main(["check", "--config", sys.argv[1], "--no-audit", "--json", "--at", sys.argv[2]])
sys.stderr.write(json.dumps({"code": code, "mlflow": any(m.split(".")[0] == "mlflow" for m in sys.modules),
                             "heavy": sorted({m for m in sys.modules if m.startswith(("scipy.stats", "alembic"))})[:3]}))
"""


def build_world(root: Path, days: int) -> tuple[Path, str]:
    import logging

    from mlflow import MlflowClient

    from retrainer.config import load_config
    from retrainer.demo.data import StreamSpec, generate_stream
    from retrainer.demo.world import demo_config, write_config
    from retrainer.profiles import build_reference_profile
    from retrainer.store import LabelRecord, Store

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # "Creating initial MLflow database tables..."
    spec = StreamSpec(days=21 + days, rows_per_day=120, drift_day=None)
    now = spec.start + timedelta(days=spec.days)
    path = write_config(root, demo_config(model_name="bench-check"))
    cfg = load_config(path)
    stream = generate_stream(spec)
    client = MlflowClient(tracking_uri=cfg.mlflow.tracking_uri, registry_uri=cfg.mlflow.tracking_uri)
    client.create_registered_model(cfg.model.name)
    client.create_model_version(cfg.model.name, source=str(root / "artifacts"))
    client.set_registered_model_alias(cfg.model.name, "champion", "1")

    with Store.open(cfg.store.url) as store:
        store.init()
        store.swap_champion(cfg.model.name, expected=None, new="1", action="promote", actor="bench", reason="bench")
        train = stream[stream["ts"] < spec.start + timedelta(days=21)]
        store.save_reference_profile(cfg.model.name, "1", build_reference_profile(
            train[cfg.data.feature_names], cfg.data.features, model_version="1", registered_at=now - timedelta(days=days)))
        window = stream[stream["ts"] >= spec.start + timedelta(days=21)].copy()
        labels = window[["request_id", "label", "label_ts"]]
        window["prediction"], window["score"], window["model_version"] = 0.0, 0.3, "1"
        store.log_prediction_frame(cfg.model.name, window[["request_id", "ts", "prediction", "score", "model_version",
                                                           *cfg.data.feature_names]], cfg.data.features)
        arrived = labels[labels["label_ts"] <= now]
        store.log_labels([LabelRecord(r, float(y), t.to_pydatetime(warn=False)) for r, y, t in
                          zip(arrived["request_id"], arrived["label"], arrived["label_ts"])], received_at=now)
    return path, now.isoformat()


def timed(argv: list[str]) -> tuple[float, float, str]:
    """Wall and CPU (user + sys of the child) seconds of one process, and its stderr."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed: {done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), done.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--days", type=int, default=7, help="days of predictions in the window")
    ap.add_argument("--smoke", action="store_true", help="2 rounds, 2 days: proves the bench runs (tests/test_benches.py)")
    args = ap.parse_args()
    if args.smoke:
        args.rounds, args.days = 2, 2
    root = Path(tempfile.mkdtemp(prefix="retrainer-bench-check-"))
    try:
        config, now = build_world(root, args.days)
        # --at the world's own "now": the demo stream is dated, and at the wall clock the window is empty.
        check = [sys.executable, "-c", _PROBE, str(config), now]
        commands = {"check": check, "imports": [sys.executable, "-c", "import retrainer.cli"],
                    "mlflow": [sys.executable, "-c", "import mlflow"]}
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        timed(check)  # warm the page cache and the .pyc files
        probe = {}
        for r in range(args.rounds):
            names = list(commands)
            for name in names[r % 3:] + names[:r % 3]:  # each one first in a third of the rounds
                wall, cpu, err = timed(commands[name])
                runs[name].append((wall, cpu))
                if name == "check":
                    probe = json.loads(err.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)

    def med(name: str, i: int) -> float:
        return statistics.median(x[i] for x in runs[name])

    print(f"retrainer check, {args.days} days x 120 predictions, median of {args.rounds} rounds "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs):")
    print(f"  {'what':<42} {'wall s':>7} {'cpu s':>7}")
    for label, name in (("retrainer check --no-audit --json", "check"), ('python -c "import retrainer.cli"', "imports"),
                        ('python -c "import mlflow" (no longer paid)', "mlflow")):
        print(f"  {label:<42} {med(name, 0):7.2f} {med(name, 1):7.2f}")
    print(f"  ratio check / import mlflow: wall {med('check', 0) / med('mlflow', 0):.2f}, "
          f"cpu {med('check', 1) / med('mlflow', 1):.2f}; goal: check <= 1.2 s wall on an idle machine")
    print(f"  the check process imported MLflow: {'yes' if probe.get('mlflow') else 'no'}, scipy.stats or Alembic: "
          f"{', '.join(probe.get('heavy', [])) or 'no'} (exit {probe.get('code')})")


if __name__ == "__main__":
    main()
