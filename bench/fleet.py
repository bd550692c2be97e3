"""A fleet of 10,000 models x 20 features checked in one cycle (issue 22).

    .venv/bin/python bench/fleet.py            # 10,000 models; every orchestration mode
    .venv/bin/python bench/fleet.py --smoke    # 300 models, plain loop and batched flow: seconds
    .venv/bin/python bench/fleet.py --performance          # the performance trigger's fleet control
    .venv/bin/python bench/fleet.py --performance --smoke  # the same on 200 models, one cycle

The synthetic fleet, in one SQLite store:

* 20 features per model: f00-f14 numeric, each model drawing each one's family at random from
  normal, lognormal and bimodal; f15-f19 categorical, Zipf over 30 categories. The references are
  one per family (50,000 draws; the profile keeps a 12,000-value sample, as by default); the
  frozen bins are the default ones (PSI quantile bins + 100 percentile bins + tails; top 50).
* window volumes log-uniform between 1k and 1M rows per model; 5% of the models have one feature
  drifted by a shift calibrated to PSI >= 0.25 on its reference bins (printed per family).
* counts: a sample of models (``--ingest``, default 20) goes through the real ingest path
  (Store.log_prediction_frame: rows, chunks and hourly histograms in one transaction; their
  volume clipped to 30k rows to keep the build short); for every other model the day's counts
  are multinomial draws from the same frozen bins with the population's bin probabilities
  (written as one daily bucket), with n, sum, sum of squares, min and max to match.
* every model runs the same policy: ``drift`` with ``statistic: pvalue`` (KS / chi-square,
  BH across the model's features, alpha 0.05): each model on its own would fire on ~4-5% of quiet
  windows; the fleet's Benjamini-Hochberg at 5% decides which retrains are requested.

``--performance`` instead checks the fleet control over the ``performance`` trigger at low volume:
``--models`` (default 2,000) models with 10-50 labelled predictions a day each, accuracy 0.90
against a floor of 0.85 (floor + tolerance: the edge of the null), plus ``--degraded`` of them at
0.80 (one tolerance below), each model's default ``performance`` policy evaluated on an in-memory
window (the same trigger code; no store), then the fleet control. It prints, over ``--cycles``
seeded cycles, the share of quiet models that fire on their own and with the fleet control, and
the share of degraded ones caught with and without it.

One cycle is timed four ways (all with the same checks and the same answer):
plain loop (check_batch over batches in this process, no Prefect); the fleet flow with one
Prefect task per model (measured on ``--per-model`` models and scaled to the fleet, since a full
run takes ~15 minutes); the fleet flow with one task per batch (thread pool); the same flow on a
local Dask cluster of 2 worker processes (cluster start included).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from retrainer.config import FeatureSpec
from retrainer.profiles import build_reference_profile
from retrainer.stats.drift import CategoricalReference, NumericReference
from retrainer.stats.histogram import frozen_bins
from retrainer.stats.psi import psi_from_counts
from retrainer.store import Store

T0 = datetime(2025, 3, 1, tzinfo=timezone.utc)
NOW = T0 + timedelta(days=1)
NUMERIC = ("normal", "lognormal", "bimodal")
N_NUMERIC, N_CATEGORICAL = 15, 5
SPECS = [FeatureSpec(name=f"f{j:02d}") for j in range(N_NUMERIC)] + [
    FeatureSpec(name=f"f{j:02d}", type="categorical") for j in range(N_NUMERIC, N_NUMERIC + N_CATEGORICAL)]
ZIPF = np.array([1 / (k + 1) ** 1.2 for k in range(30)])
ZIPF /= ZIPF.sum()
CATS = np.array([f"c{k}" for k in range(30)], dtype=object)


def draw(rng: np.random.Generator, family: str, n: int, drift: float = 0.0) -> np.ndarray:
    if family == "normal":
        return rng.normal(drift, 1.0, n)
    if family == "lognormal":
        return rng.lognormal(drift, 1.0, n)
    if family == "bimodal":
        left = rng.random(n) < 0.5
        return np.where(left, rng.normal(-2.0, 0.5, n), rng.normal(2.0, 0.5, n)) + drift
    # Zipf: drift moves mass from the head to the tail (exponent 1.2 -> 1.2 - drift)
    p = np.array([1 / (k + 1) ** (1.2 - drift) for k in range(30)])
    return rng.choice(CATS, n, p=p / p.sum())


class Family:
    """One family's reference, frozen bins, population bin probabilities (quiet and drifted)."""

    def __init__(self, name: str, rng: np.random.Generator) -> None:
        self.name = name
        values = draw(rng, name, 50_000)
        ref = (CategoricalReference.from_values(values) if name == "zipf"
               else NumericReference.from_values(values, sample_size=12_000, seed=1))
        self.bins = frozen_bins(ref)
        self.bins_json = self.bins.to_dict()
        self.quiet = self._population(rng, 0.0)
        self.drift, self.psi = self._calibrate(rng)
        self.drifted = self._population(rng, self.drift)

    def _population(self, rng: np.random.Generator, drift: float) -> dict:
        big = draw(rng, self.name, 1_000_000, drift)
        h = self.bins.count(big)
        out = {"p": h.counts / h.counts.sum(), "min": h.min, "max": h.max}
        if self.name != "zipf":
            out["mean"], out["m2"] = float(big.mean()), float(np.mean(big * big))
        return out

    def _psi(self, probs: np.ndarray) -> float:
        b = self.bins
        if self.name == "zipf":
            return psi_from_counts(b.ref_counts, np.round(probs * 1e7).astype(np.int64))
        cur = np.bincount(b.psi_group, weights=probs * 1e7, minlength=b.ref_psi_counts.size)
        return psi_from_counts(b.ref_psi_counts, np.round(cur).astype(np.int64))

    def _calibrate(self, rng: np.random.Generator) -> tuple[float, float]:
        for drift in np.arange(0.05, 3.0, 0.05):
            psi = self._psi(self._population(rng, float(drift))["p"])
            if psi >= 0.3:  # a margin over 0.25: a window's own noise must not carry it below
                return float(drift), psi
        raise RuntimeError(f"no drift reaches PSI 0.3 for {self.name}")


def build(url: str, n_models: int, n_ingest: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    families = {name: Family(name, rng) for name in (*NUMERIC, "zipf")}
    store = Store.open(url, max_batch=50_000)
    store.init()
    names = [f"m{i:05d}" for i in range(n_models)]
    volume = np.exp(rng.uniform(math.log(1_000), math.log(1_000_000), n_models)).astype(int)
    drifted = set(rng.choice(n_models, max(1, n_models // 20), replace=False).tolist())
    truth = {}
    ingest = set(rng.choice(n_models, min(n_ingest, n_models), replace=False).tolist())
    refs_rows, hist_rows, state_rows = [], [], []
    for i, name in enumerate(names):
        fams = [str(f) for f in rng.choice(NUMERIC, N_NUMERIC)] + ["zipf"] * N_CATEGORICAL
        moved = int(rng.integers(0, len(SPECS))) if i in drifted else None
        truth[name] = {"drifted": i in drifted, "feature": moved, "volume": int(volume[i])}
        if i in ingest:
            _ingest(store, name, fams, moved, min(int(volume[i]), 30_000), families, rng)
            truth[name]["volume"] = min(int(volume[i]), 30_000)
            continue
        state_rows.append((name, "1", time.time()))
        bins = {s.name: families[f].bins_json for s, f in zip(SPECS, fams, strict=True)}
        refs_rows.append((name, "1", json.dumps(bins), 86_400.0, 0.0, (T0 - timedelta(days=1)).timestamp(), time.time()))
        n = int(volume[i])
        for j, (spec, fam) in enumerate(zip(SPECS, fams, strict=True)):
            pop = families[fam].drifted if j == moved else families[fam].quiet
            counts = rng.multinomial(n, pop["p"]).astype("<i8")
            mean, m2 = pop.get("mean", 0.0), pop.get("m2", 0.0)
            lo, hi = (pop["min"], pop["max"]) if fam != "zipf" else (None, None)
            hist_rows.append((name, "1", T0.timestamp(), spec.name, n, 0, n * mean, n * m2, lo, hi, counts.tobytes()))
    with store.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO model_state (model_name, champion_version, updated_at) VALUES (?, ?, ?)", state_rows)
        conn.exec_driver_sql("INSERT INTO histogram_refs (model_name, version, bins, bucket_seconds, complete_from, "
                             "registered_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", refs_rows)
        conn.exec_driver_sql("INSERT INTO feature_histograms (model_name, version, bucket_start, feature, n, nulls, sum, "
                             "sum_sq, min, max, counts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", hist_rows)
    store.close()
    return {"truth": truth, "families": {k: (f.drift, f.psi) for k, f in families.items()}, "ingest": len(ingest)}


def _ingest(store: Store, name: str, fams: list[str], moved: int | None, n: int, families: dict, rng) -> None:
    """The real path: a reference profile, the champion, its bins, then the rows through the writer."""
    train = pd.DataFrame({s.name: draw(rng, f, 20_000) for s, f in zip(SPECS, fams, strict=True)})
    store.save_reference_profile(name, "1", build_reference_profile(train, SPECS, model_version="1",
                                                                    registered_at=T0 - timedelta(days=1)))
    store.champion_cas(name, None, "1")
    store.ensure_histograms(name, "1")  # bins frozen before the rows arrive: every row counted at ingest
    for start in range(0, n, 5_000):
        k = min(5_000, n - start)
        frame = pd.DataFrame({
            "request_id": [f"{name}-{i}" for i in range(start, start + k)],
            "ts": pd.Timestamp(T0) + pd.to_timedelta(np.sort(rng.uniform(0, 86_399, k)), unit="s"),
            "prediction": 0.0,
            **{s.name: draw(rng, f, k, families[f].drift if j == moved else 0.0)
               for j, (s, f) in enumerate(zip(SPECS, fams, strict=True))},
        })
        store.log_prediction_frame(name, frame, SPECS)


def write_fleet(path: Path, url: str, *, models: list[str] | None, batch: int) -> Path:
    doc = {
        "fleet": {"name": "bench", "batch_size": batch, "fdr": 0.05, "control": "bh", "discover": models is None},
        "template": {"store": {"url": url}, "data": {"features": [s.model_dump() for s in SPECS]},
                     "triggers": [{"type": "drift", "window": "1d", "statistic": "pvalue", "alpha": 0.05,
                                   "min_samples": 500}]},
        "models": [{"name": m} for m in (models or [])],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def plain_loop(fleet_path: Path) -> dict:
    from retrainer.fleet_config import fleet_model_configs, load_fleet_config
    from retrainer.triggers.fleet import check_batch, fleet_control

    cfg = load_fleet_config(fleet_path)
    tmpl_url = yaml.safe_load(fleet_path.read_text())["template"]["store"]["url"]
    store = Store.open(tmpl_url)
    configs = fleet_model_configs(cfg, store.champions())
    checks, policies = [], {}
    for i in range(0, len(configs), cfg.fleet.batch_size):
        checks += check_batch(configs[i: i + cfg.fleet.batch_size], store, now=NOW, policies=policies)
    store.close()
    return fleet_control(checks, rate=cfg.fleet.fdr, fleet="bench", checked_at=NOW).to_dict()


def score(summary: dict, truth: dict) -> dict:
    by = {c["model"]: c for c in summary["checks"]}
    drifted = [m for m, t in truth.items() if t["drifted"]]
    quiet = [m for m, t in truth.items() if not t["drifted"]]
    fired = set(summary["fired"])
    return {
        "recall": sum(m in fired for m in drifted) / len(drifted),
        "quiet_fire_with_control": sum(m in fired for m in quiet) / len(quiet),
        "quiet_fire_without": sum(bool(by[m]["should_retrain"]) for m in quiet) / len(quiet),
        "held_back": summary["n_held_back"], "errors": summary["n_errors"], "n": len(by),
    }


def timed(label: str, fn, results: list) -> dict:
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    results.append((label, time.perf_counter() - t, time.process_time() - c))
    print(f"  {label}: {results[-1][1]:.1f} s", flush=True)
    return out


def performance_cycle(n_models: int, degraded: float, seed: int, trigger: dict) -> dict:
    """One cycle of a low-volume fleet judged by ``performance``: own verdicts and the fleet control's."""
    from retrainer.testing import InMemoryWindowSource, labelled_log
    from retrainer.triggers.context import ChampionInfo, TriggerContext
    from retrainer.triggers.fleet import fleet_control, model_check
    from retrainer.triggers.policy import build_policy

    rng = np.random.default_rng(seed)
    policy = build_policy([trigger])
    bad = set(rng.choice(n_models, int(round(n_models * degraded)), replace=False).tolist())
    checks = []
    for i in range(n_models):
        frame = labelled_log(rng, 0.80 if i in bad else 0.90, end=NOW, days=20)
        ctx = TriggerContext(model_name=f"m{i}", now=NOW, source=InMemoryWindowSource(frame),
                             champion=ChampionInfo("1", created_at=NOW - timedelta(days=60)))
        checks.append(model_check(f"m{i}", policy.check(ctx)))
    fired = set(fleet_control(checks, rate=0.05).fired)
    quiet = [c for i, c in enumerate(checks) if i not in bad]
    worse = [c for i, c in enumerate(checks) if i in bad]
    return {"quiet": len(quiet), "degraded": len(worse),
            "quiet_own": sum(c.should_retrain for c in quiet), "quiet_control": sum(c.model in fired for c in quiet),
            "caught_own": sum(c.should_retrain for c in worse), "caught_control": sum(c.model in fired for c in worse)}


def performance_bench(args: argparse.Namespace) -> None:
    models = 200 if args.smoke else (args.models or 2_000)
    cycles = 1 if args.smoke else args.cycles
    configs = {
        "defaults (window auto: the newest 147 labels)": {"type": "performance", "thresholds": {"accuracy": 0.85}},
        "window 2d, min_labels 20 (20-100 labels)": {"type": "performance", "thresholds": {"accuracy": 0.85},
                                                     "window": "2d", "min_labels": 20},
    }
    print(f"performance fleet control: {models:,} models x {cycles} cycles, 10-50 labels a day, accuracy 0.90 "
          f"(floor 0.85 + tolerance 0.05); {args.degraded:.0%} degraded to 0.80; BH at 5%")
    print(f"{'performance trigger':<48} | quiet fire: own | with control | degraded caught: own | with control")
    for label, trigger in configs.items():
        t = time.perf_counter()
        total: dict = {}
        for c in range(cycles):
            for k, v in performance_cycle(models, args.degraded, args.seed + c, trigger).items():
                total[k] = total.get(k, 0) + v
        q, d = total["quiet"], total["degraded"]
        own, control = (f"{total['caught_own'] / d:.1%}", f"{total['caught_control'] / d:.1%}") if d else ("n/a", "n/a")
        print(f"{label:<48} | {total['quiet_own'] / q:>14.2%} | {total['quiet_control'] / q:>12.2%} | "
              f"{own:>20} | {control:>12}"
              f"   ({q:,} quiet, {total['degraded']:,} degraded checks; {time.perf_counter() - t:.0f} s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", type=int, default=None, help="default 10,000 (--performance: 2,000)")
    ap.add_argument("--ingest", type=int, default=20, help="models whose rows go through the real ingest path")
    ap.add_argument("--batch", type=int, default=250, help="models per task")
    ap.add_argument("--per-model", type=int, default=100, help="models timed with one Prefect task each (scaled up)")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--smoke", action="store_true", help="300 models, plain loop and batched flow only: seconds")
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--performance", action="store_true",
                    help="the fleet control over the performance trigger at 10-50 labels a day (no store)")
    ap.add_argument("--cycles", type=int, default=5, help="--performance: seeded cycles")
    ap.add_argument("--degraded", type=float, default=0.05, help="--performance: share of models at floor - tolerance")
    args = ap.parse_args()
    if args.performance:
        performance_bench(args)
        return
    args.models = 10_000 if args.models is None else args.models
    if args.smoke:
        args.models, args.ingest, args.per_model, args.no_dask = 300, 2, 0, True
    with tempfile.TemporaryDirectory() as tmp:
        # A Prefect home of its own: the ephemeral API's database is not shared with other runs.
        os.environ.setdefault("PREFECT_HOME", str(Path(tmp) / "prefect"))
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        # Offline, the temporary server's telemetry heartbeat logs errors (and can lock its SQLite).
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        # On a loaded host the ephemeral API can take more than its default 20 s to come up.
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")
        url = f"sqlite:///{Path(tmp) / 'fleet.db'}"
        t = time.perf_counter()
        built = build(url, args.models, args.ingest, args.seed)
        print(f"built: {args.models:,} models x {len(SPECS)} features in {time.perf_counter() - t:.0f} s "
              f"({built['ingest']} through the real ingest path, the rest multinomial draws on the same bins)")
        for fam, (drift, psi) in built["families"].items():
            print(f"  injected drift, {fam}: shift {drift:.2f} -> PSI {psi:.2f} on the reference bins")
        fleet_path = write_fleet(Path(tmp) / "fleet.yaml", url, models=None, batch=args.batch)
        times: list = []
        print("one cycle (audit rows written every time):")
        timed("plain loop (no Prefect), first cycle of this process: frozen bins parsed", lambda: plain_loop(fleet_path),
              times)
        summary = timed("plain loop (no Prefect)", lambda: plain_loop(fleet_path), times)
        quality = score(summary, built["truth"])
        from prefect import flow

        from retrainer.flows.fleet import fleet, fleet_on_dask

        @flow
        def warm() -> None:  # start the ephemeral Prefect API before timing flows
            return None

        warm()
        batched = timed(f"Prefect, one task per batch of {args.batch} (thread pool)",
                        lambda: fleet(fleet_path=str(fleet_path), now=NOW, emit_events=False), times)
        assert sorted(batched["fired"]) == sorted(summary["fired"]), "the batched flow answers differently"
        if args.per_model:
            sub = sorted(built["truth"])[: args.per_model]
            sub_path = write_fleet(Path(tmp) / "sub.yaml", url, models=sub, batch=1)
            t = time.perf_counter()
            fleet(fleet_path=str(sub_path), now=NOW, emit_events=False, batch_size=1)
            per = (time.perf_counter() - t) / len(sub)
            times.append((f"Prefect, one task per model ({len(sub)} timed, x {args.models:,})", per * args.models, None))
            print(f"  {times[-1][0]}: {times[-1][1]:.0f} s ({per * 1000:.0f} ms per model)")
        if not args.no_dask:
            dask = timed("Prefect on a local Dask cluster, 2 worker processes (start included)",
                         lambda: fleet_on_dask(fleet_path=str(fleet_path), now=NOW, emit_events=False, n_workers=2),
                         times)
            assert sorted(dask["fired"]) == sorted(summary["fired"]), "the Dask run answers differently"
    print()
    print(f"{'orchestration':<72} | cycle, {args.models:,} models | CPU of this process")
    for label, seconds, cpu in times:
        cpu_text = "" if cpu is None else f"{cpu:>6.1f} s" + (" (+ workers)" if "Dask" in label else "")
        print(f"{label:<72} | {seconds:>9.1f} s | {cpu_text}")
    print()
    print(f"recall on injected drift: {quality['recall']:.1%} (target >= 95%)")
    print(f"quiet models firing: {quality['quiet_fire_with_control']:.2%} with the fleet control (target <= 1%), "
          f"{quality['quiet_fire_without']:.2%} without it (each model's own alpha)")
    print(f"held back by the fleet control: {quality['held_back']}; errors: {quality['errors']}; "
          f"fastest cycle {min(s for _, s, _ in times):.1f} s (target <= 60 s)")
    if args.smoke:  # keep the --performance path from rotting: the smoke run is what the tests run
        print()
        performance_bench(args)


if __name__ == "__main__":
    main()
