"""Serving benchmark: `mlflow models serve` vs `retrainer serve` (both durability modes) on the same model.

    .venv/bin/python bench/serve.py [--seconds 5] [--concurrency 8] [--rounds 6] [--isolation process|thread] [--smoke]

Needs aiohttp (``pip install -e '.[bench]'``).

Both servers run as subprocesses on 127.0.0.1 (one uvicorn worker each) and serve the same
registered scikit-learn model (logistic regression on 8 numeric features). One load generator
(aiohttp, keep-alive, fixed concurrency, single-instance requests) drives each in turn:

* ``mlflow``          — ``mlflow models serve -m models:/<name>/1 --env-manager local``
* ``retrainer``       — ``retrainer serve`` (``serving.durability: committed`` with
  ``serving.commit: spool``: a request is answered once its row is in the fsync'd prediction
  spool) with an A/B test running
  (versions 1 vs 2, 50/50, sticky units), every prediction and its features logged to SQLite
* ``retrainer-buffered`` — a second server, same model, A/B test and a copy of the store, with
  ``serving.durability: buffered`` (answers first, logs from a queue)
* ``retrainer-store`` — the same with ``serving.commit: store`` (the default: committed by a
  group commit into the store itself, no spool)
* ``retrainer+shadow`` — a third server like ``retrainer`` with version 3 shadowing 100% of the
  traffic (in its own process unless ``--isolation thread``); separate, so a shadow still busy
  after its phase does not slow the others down

Phases alternate over ``--rounds`` (forward, then backward: compared servers run back to
back, each first in half the rounds). The ratios are medians of per-round ratios, so a machine
whose speed drifts (a shared VM) moves both sides of each alike; they are the figures to read.
Also reported: ``bucket()`` per call. Everything lives in a temp dir.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

FEATURES = [f"f{i}" for i in range(8)]
ISOLATION = "process"  # --isolation


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f}s")


def server_config(root: Path, name: str, durability: str, store: str, commit: str = "spool") -> Path:
    path = root / f"{name}.yaml"
    path.write_text(json.dumps({
        "model": {"name": "bench-model"},
        "store": {"url": f"sqlite:///{store}"},
        "mlflow": {"tracking_uri": "sqlite:///mlflow.db"},
        "data": {"source": {"table": "t"}, "features": [{"name": n} for n in FEATURES]},
        "rollout": {"shadow": {"queue_size": 1000, "workers": 1, "isolation": ISOLATION}},
        "serving": {"durability": durability, "commit": commit},
    }))
    return path


def setup(root: Path) -> tuple[Path, str, str]:
    """Register 3 versions, make v1 champion, start an A/B test (1 vs 2) and a shadow of v3."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from retrainer.config import load_config
    from retrainer.deployments.rollout.promotion import promote
    from retrainer.registry import CHALLENGER, Registry
    from retrainer.store import Store
    from retrainer.tasks.register import register_candidate

    cfg_path = server_config(root, "retrainer", "committed", "store.db")
    cfg = load_config(cfg_path)
    registry = Registry.from_config(cfg)
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2000, len(FEATURES))), columns=FEATURES)
    window = (datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
    versions = []
    for i in range(3):
        y = (X.iloc[:, 0] + 0.5 * X.iloc[:, i + 1] + rng.normal(scale=0.5, size=len(X)) > 0).astype(int)
        rv = register_candidate(LogisticRegression().fit(X, y), registry=registry, idempotency_key=f"bench-{i}",
                                metrics={}, reasons=["bench"], data_window=window, flow_run_id=None,
                                input_example=X.head(5))
        versions.append(rv.version)
    store = Store.open(cfg.store.url)
    store.init()
    promote(registry, store, version=versions[0], expected_champion=None, actor="bench", reason="bench")
    registry.set_alias(CHALLENGER, versions[1])
    store.start_ab_test(cfg.model.name, champion_version=versions[0], challenger_version=versions[1],
                        split=0.5, salt="bench", config=cfg.rollout.ab.model_dump(mode="json"))
    store.append_ledger(cfg.model.name, action="shadow_start", from_version=versions[0], to_version=versions[2],
                        actor="bench", reason="bench", details={"sample": 1.0})
    store.close()
    # Three servers, each with the same state in its own store file: the shadow one keeps the
    # shadow on (a separate server, so a shadow process still busy after its phase cannot slow
    # the committed/buffered comparison), the other two switch it off.
    for copy in ("store-buffered.db", "store-group.db", "store-shadow.db"):
        for suffix in ("", "-wal"):  # a WAL left behind holds committed pages too
            if (root / f"store.db{suffix}").exists():
                shutil.copy(root / f"store.db{suffix}", root / f"{copy}{suffix}")
    for db in ("store.db", "store-buffered.db", "store-group.db"):
        store = Store.open(f"sqlite:///{root / db}")
        store.append_ledger(cfg.model.name, action="shadow_stop", from_version=versions[0], to_version=versions[2],
                            actor="bench", reason="bench", details={"sample": 1.0})
        store.close()
    server_config(root, "retrainer-buffered", "buffered", "store-buffered.db")
    server_config(root, "retrainer-store", "committed", "store-group.db", commit="store")
    server_config(root, "retrainer-shadow", "committed", "store-shadow.db")
    return cfg_path, cfg.mlflow.tracking_uri, versions[0]


async def drive(url: str, make_body, seconds: float, concurrency: int, warmup: float = 1.5) -> dict[str, float]:
    import aiohttp

    latencies: list[float] = []
    answered = 0  # warm-up included: the CPU figure covers the whole drive
    errors = 0
    stop_at = 0.0
    counter = 0
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(measure: bool) -> None:
            nonlocal errors, counter, answered
            while time.perf_counter() < stop_at:
                counter += 1
                body = make_body(counter)
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    ok = r.status == 200
                answered += ok
                if measure:
                    if ok:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        errors += 1

        stop_at = time.perf_counter() + warmup
        await asyncio.gather(*(worker(False) for _ in range(concurrency)))
        stop_at = time.perf_counter() + seconds
        start = time.perf_counter()
        await asyncio.gather(*(worker(True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000.0
    return {"rps": len(latencies) / elapsed, "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)), "errors": errors, "n": len(latencies), "answered": answered}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a server and its children (mlflow execs uvicorn in a child; the
    shadow runs in one): what a request costs, whatever else the machine is doing."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--isolation", choices=["process", "thread"], default="process",
                    help="rollout.shadow.isolation of the retrainer server (default: process)")
    ap.add_argument("--smoke", action="store_true",
                    help="one round of 0.5 s phases, 2 clients: proves the bench runs (tests/test_benches.py)")
    args = ap.parse_args()
    if args.smoke:
        args.seconds, args.concurrency, args.rounds = 0.5, 2, 1
    global ISOLATION
    ISOLATION = args.isolation

    from retrainer.deployments.rollout.ab import bucket

    per_call = min(timeit.repeat(lambda: bucket("salt-1234", "user-1234567"), number=100_000, repeat=7)) / 100_000

    rng = np.random.default_rng(1)
    rows = rng.normal(size=(1000, len(FEATURES))).round(4).tolist()
    records = [dict(zip(FEATURES, r)) for r in rows]
    mlflow_bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in records]
    retrainer_bodies = [json.dumps({"features": r, "unit_id": f"user-{i % 500}"}).encode() for i, r in enumerate(records)]

    with tempfile.TemporaryDirectory(prefix="retrainer-bench-") as tmp:
        root = Path(tmp)
        print("registering models ...", file=sys.stderr)
        uri = f"sqlite:///{root / 'mlflow.db'}"
        # Every MLflow default (this process and the servers) points into the temp dir.
        os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = uri
        os.chdir(root)
        cfg_path, tracking_uri, v1 = setup(root)
        env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "MLFLOW_REGISTRY_URI": tracking_uri,
               "PYTHONWARNINGS": "ignore"}
        bin_dir = Path(sys.executable).parent
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"  # mlflow execs `uvicorn` from PATH
        # The peer: MLflow 3 refuses to deserialize sklearn models (even skops) unless allowed; the
        # bench registered these itself. retrainer's servers keep the switch off (they check skops types).
        mlflow_env = {**env, "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
        ports = {name: free_port() for name in ("mlflow", "retrainer", "retrainer-buffered", "retrainer-store",
                                                "retrainer+shadow")}
        configs = {"retrainer": cfg_path, "retrainer-buffered": root / "retrainer-buffered.yaml",
                   "retrainer-store": root / "retrainer-store.yaml",
                   "retrainer+shadow": root / "retrainer-shadow.yaml"}

        def retrainer(name: str) -> subprocess.Popen[bytes]:
            return subprocess.Popen([str(bin_dir / "retrainer"), "serve", "--config", str(configs[name]),
                                     "--port", str(ports[name])],
                                    env=env, cwd=root, stdout=subprocess.DEVNULL, stderr=open(root / f"{name}.log", "wb"))  # noqa: SIM115 - closed with the process

        procs = {
            "mlflow": subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", f"models:/bench-model/{v1}",
                                        "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports["mlflow"]), "-w", "1"],
                                       env=mlflow_env, cwd=root, stdout=subprocess.DEVNULL, stderr=open(root / "mlflow.log", "wb")),  # noqa: SIM115 - closed with the process
            **{name: retrainer(name) for name in configs},
        }
        base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        try:
            print("starting servers ...", file=sys.stderr)
            try:
                for name in procs:
                    wait_http(base[name] + ("/ping" if name == "mlflow" else "/ready"))
            except RuntimeError:
                for name in procs:
                    print(f"--- {name}.log\n" + (root / f"{name}.log").read_text(errors="replace")[-3000:], file=sys.stderr)
                raise
            import httpx

            for name in configs:
                routing = httpx.post(base[name] + "/admin/reload", timeout=60).json()["routing"]
                assert (routing["shadow"] is not None) == (name == "retrainer+shadow"), (name, routing)
            names = ["mlflow", "retrainer", "retrainer-buffered", "retrainer-store", "retrainer+shadow"]
            results: dict[str, list[dict[str, float]]] = {n: [] for n in names}
            for r in range(args.rounds):
                # Forward, then backward: the committed/buffered pair and the committed/mlflow pair always
                # run back to back, each side first in half of the rounds (ratios per round, below).
                for name in names if r % 2 == 0 else names[::-1]:
                    url, bodies = (base[name] + "/invocations", mlflow_bodies) if name == "mlflow" else \
                        (base[name] + "/predict", retrainer_bodies)
                    pid = procs[name].pid
                    cpu0 = cpu_seconds(pid)
                    res = asyncio.run(drive(url, lambda i, b=bodies: b[i % len(b)], args.seconds, args.concurrency))
                    res["cpu_ms"] = (cpu_seconds(pid) - cpu0) * 1000.0 / max(1, res["answered"])
                    results[name].append(res)
                    print(f"round {r + 1} {name:18s} {res['rps']:8.0f} req/s  p50 {res['p50_ms']:6.2f} ms  "
                          f"p99 {res['p99_ms']:6.2f} ms  server CPU {res['cpu_ms']:5.2f} ms/req  errors {res['errors']}",
                          file=sys.stderr)
            status = httpx.get(base["retrainer"] + "/admin/status").json()
            status_buf = httpx.get(base["retrainer-buffered"] + "/admin/status").json()
            status_group = httpx.get(base["retrainer-store"] + "/admin/status").json()
            status_shadow = httpx.get(base["retrainer+shadow"] + "/admin/status").json()
        finally:
            for p in procs.values():
                p.terminate()
            for p in procs.values():
                try:
                    p.wait(60)
                except subprocess.TimeoutExpired:
                    p.kill()
        from retrainer.store import Store

        store = Store.open(f"sqlite:///{root / 'store.db'}")
        logged = store.stats()["rows"]
        store.close()
        store = Store.open(f"sqlite:///{root / 'store-shadow.db'}")
        logged_shadow = store.stats()["rows"]
        store.close()
        os.chdir("/")

    med = {k: {m: statistics.median(x[m] for x in v) for m in ("rps", "p50_ms", "p99_ms", "cpu_ms")}
           for k, v in results.items()}
    committed, buffered, mlflow = med["retrainer"], med["retrainer-buffered"], med["mlflow"]
    print(f"\nserving benchmark (shadow isolation: {args.isolation}): {args.concurrency} concurrent clients, "
          f"{args.seconds:.0f}s x {args.rounds} rounds, single-instance requests, loopback, {os.cpu_count()} CPUs (medians)")
    print(f"{'server':28s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} {'CPU ms/req':>11s}")
    labels = {"mlflow": "mlflow", "retrainer": "retrainer (committed)", "retrainer-buffered": "retrainer (buffered)",
              "retrainer-store": "retrainer (commit: store)",
              "retrainer+shadow": "retrainer (committed)+shadow"}
    for name in ("mlflow", "retrainer", "retrainer-buffered", "retrainer-store", "retrainer+shadow"):
        m = med[name]
        print(f"{labels[name]:28s} {m['rps']:9.0f} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f} {m['cpu_ms']:11.2f}")
    def per_round(a: str, b: str, metric: str = "rps") -> str:
        """Median (min-max) over rounds of a/b measured back to back: a machine whose speed
        drifts between phases moves both sides of each ratio alike."""
        ratios = [x[metric] / y[metric] for x, y in zip(results[a], results[b], strict=True)]
        return f"{statistics.median(ratios):.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f})"

    print(f"\nthroughput committed / buffered: {per_round('retrainer', 'retrainer-buffered')} (goal >= 0.90); "
          f"p50 {committed['p50_ms'] / buffered['p50_ms']:.2f}x, p99 {committed['p99_ms'] / buffered['p99_ms']:.2f}x")
    print(f"throughput commit: store (group commit) / buffered: {per_round('retrainer-store', 'retrainer-buffered')}")
    print(f"throughput spool / commit: store (group commit): {per_round('retrainer', 'retrainer-store')} "
          "(the spool stays the default only at >= 1.15)")
    print(f"throughput retrainer(committed, A/B+log) / mlflow: {per_round('retrainer', 'mlflow')}x (goal >= 1.5)")
    # Server CPU per request does not depend on what the neighbours do: on a saturated server the
    # throughput ratio tends to the inverse CPU ratio.
    print(f"CPU-bound throughput (inverse server CPU per request): committed / buffered "
          f"{per_round('retrainer-buffered', 'retrainer', 'cpu_ms')}, commit: store / buffered "
          f"{per_round('retrainer-buffered', 'retrainer-store', 'cpu_ms')}, committed / mlflow {per_round('mlflow', 'retrainer', 'cpu_ms')}x")
    print(f"throughput retrainer(committed, A/B+log+shadow) / mlflow: {med['retrainer+shadow']['rps'] / mlflow['rps']:.2f}x")
    print(f"p99 added by shadow: {med['retrainer+shadow']['p99_ms'] - committed['p99_ms']:+.2f} ms")
    print(f"bucket(): {per_call * 1e6:.2f} us per call")
    w, sp = status["log_writer"], status["spool"]
    print(f"committed server: logged {logged['predictions']} predictions, {sp['requests']} requests acknowledged after "
          f"{sp['fsyncs']} spool fsyncs ({sp['requests_per_fsync']} requests each, {sp['failures']} failed), stored in "
          f"{w['transactions']} transactions, {logged['ab_assignments']} A/B units, "
          f"log backpressure waits {w['backpressure_waits']}")
    wg = status_group["log_writer"]
    print(f"commit: store server: {wg['commits']} requests acknowledged after commit ({wg['commit_failures']} failed) "
          f"in {wg['transactions']} transactions ({wg['commits'] / max(1, wg['transactions']):.1f} requests each)")
    print(f"shadow server: {logged_shadow['predictions']} predictions, {logged_shadow['shadow_comparisons']} shadow "
          f"comparisons stored, {status_shadow['shadow']['dropped']} dropped (shadow queue full)")
    wb = status_buf["log_writer"]
    print(f"buffered server: logged {wb['predictions_written']} predictions in {wb['transactions']} transactions "
          f"({wb['predictions_written'] / max(1, wb['transactions']):.1f} rows each), "
          f"log backpressure waits {wb['backpressure_waits']}")


if __name__ == "__main__":
    main()
