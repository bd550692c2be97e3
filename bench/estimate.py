"""Label-free performance estimation (CBPE, ``estimated_performance``): how right, how honest its
CIs, and what one estimate costs.

    .venv/bin/python bench/estimate.py                 # everything (a few minutes on 2 busy cores)
    .venv/bin/python bench/estimate.py --windows 100 --rows 200000
    .venv/bin/python bench/estimate.py --cost-only --store   # + the trigger over a 1M-row SQLite store

Three parts, printed as tables:

1. The demo generator (src/retrainer/demo/data.py): a model trained and calibrated (holdout
   calibration, as registration does) on the pre-onset world, then ``--windows`` windows of
   n = 2,000 in three worlds: quiet; covariate shift only (the post-onset features, the pre-onset
   P(y | x): CBPE's assumption holds); and the published post-onset stream (covariate + concept
   drift: it does not). MAE of estimated accuracy / f1 against the realized ones, and the share of
   windows whose realized metric lies inside the 95% CI.
2. ../shared/data/weather (see its README): trained on 1949-1953, calibrated on 1954, one window
   per later year. Its drift is mostly in P(y | x), so the estimate is expected to miss it; the
   table says by how much (a measured limit, not a failure).
3. Cost of one estimate on a 1M-row window (30% of labels realized), and of the whole trigger
   evaluation over an in-memory 1M-row window, against sklearn's f1_score and the five sklearn
   metrics on the same rows (the realized computation the estimate replaces). Goal: < 1 s.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # 2 shared cores: fits single-threaded (as the other benches)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from datetime import timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score  # noqa: E402

from retrainer.config import EstimatorConfig  # noqa: E402
from retrainer.demo import data as demo  # noqa: E402
from retrainer.stats.calibration import CalibrationMap  # noqa: E402
from retrainer.stats.estimation import estimate_performance  # noqa: E402
from retrainer.tasks.register import holdout_calibration  # noqa: E402
from retrainer.tasks.train import build_estimator  # noqa: E402
from retrainer.testing import DEFAULT_NOW, make_context  # noqa: E402
from retrainer.triggers.estimated_performance import EstimatedPerformanceTrigger  # noqa: E402

WEATHER = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "weather" / "weather.csv.gz"
METRICS = ("accuracy", "f1", "roc_auc")


def realized(y: np.ndarray, pred: np.ndarray, score: np.ndarray) -> dict[str, float]:
    return {"accuracy": accuracy_score(y, pred), "f1": f1_score(y, pred, zero_division=0),
            "roc_auc": roc_auc_score(y, score) if 0 < y.sum() < y.size else np.nan}


def judge(windows: list[tuple[np.ndarray, np.ndarray, np.ndarray]], cal: CalibrationMap) -> dict[str, float]:
    """MAE, bias (estimate - realized) and CI coverage over windows of (y, pred, score)."""
    err: dict[str, list[float]] = {m: [] for m in METRICS}
    inside: dict[str, list[bool]] = {m: [] for m in METRICS}
    est_f1, real_f1 = [], []
    for y, pred, score in windows:
        est = estimate_performance(cal.apply(score), pred, score=score)
        truth = realized(y, pred, score)
        for m in METRICS:
            if np.isnan(truth[m]) or est.metrics[m] is None:
                continue
            err[m].append(est.metrics[m] - truth[m])
            lo, hi = est.ci[m]
            inside[m].append(lo <= truth[m] <= hi)
        est_f1.append(est.metrics["f1"])
        real_f1.append(truth["f1"])
    out = {"windows": len(windows), "mean_f1_est": float(np.mean(est_f1)), "mean_f1_real": float(np.mean(real_f1))}
    for m in METRICS:
        out[f"mae_{m}"] = float(np.mean(np.abs(err[m])))
        out[f"bias_{m}"] = float(np.mean(err[m]))
        out[f"cover_{m}"] = float(np.mean(inside[m]))
    return out


def demo_worlds(n_windows: int, n: int = 2000) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(7)
    cols = [f.name for f in demo.FEATURES]

    def world(rows: int, features_drifted: bool, concept_drifted: bool) -> tuple[pd.DataFrame, np.ndarray]:
        x = demo._features(rng, rows, np.full(rows, features_drifted))
        p = demo._default_probability(x, np.full(rows, concept_drifted))
        return x[cols], (rng.random(rows) < p).astype(int)

    x_train, y_train = world(20_000, False, False)
    model = build_estimator(EstimatorConfig(), demo.FEATURES).fit(x_train, y_train)
    x_hold, y_hold = world(10_000, False, False)
    cal = CalibrationMap.from_dict(holdout_calibration(model, x_hold, y_hold))
    print(f"demo: calibration {cal.method} (out-of-fold log-loss {cal.log_loss})")
    out = {}
    for name, feat, concept in (("demo quiet", False, False), ("demo covariate shift", True, False),
                                ("demo after onset (covariate+concept)", True, True)):
        x, y = world(n_windows * n, feat, concept)
        score = model.predict_proba(x)[:, 1]
        pred = score >= 0.5  # predict() is the argmax of predict_proba
        out[name] = judge([(y[i:i + n], pred[i:i + n], score[i:i + n]) for i in range(0, len(y), n)], cal)
    return out


def weather() -> dict[str, dict[str, float]] | None:
    if not WEATHER.exists():
        print(f"weather: {WEATHER} not found, skipped")
        return None
    frame = pd.read_csv(WEATHER)
    features = [c for c in frame.columns if c not in ("day", "rain")]
    year = pd.to_datetime(frame["day"]).dt.year.to_numpy()
    train, hold = frame[year < 1954], frame[year == 1954]
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(train[features], train["rain"])
    cal = CalibrationMap.from_dict(holdout_calibration(model, hold[features], hold["rain"]))
    print(f"weather: calibration {cal.method}; trained on 1949-1953, calibrated on 1954")
    windows = []
    per_year = []
    for y_ in range(1955, int(year.max()) + 1):
        part = frame[year == y_]
        if len(part) < 300:
            continue
        score = model.predict_proba(part[features])[:, 1]
        pred = score >= 0.5
        windows.append((part["rain"].to_numpy(), pred, score))
        est = estimate_performance(cal.apply(score), pred, score=score)
        per_year.append((y_, est.metrics["f1"], f1_score(part["rain"], pred, zero_division=0)))
    early = [w for (yr, *_), w in zip(per_year, windows, strict=True) if yr < 1965]
    late = [w for (yr, *_), w in zip(per_year, windows, strict=True) if yr >= 1980]
    print("weather per decade, f1 estimated vs realized:",
          ", ".join(f"{yr}: {e:.2f}/{r:.2f}" for yr, e, r in per_year if yr % 10 == 5))
    return {"weather 1955-1964": judge(early, cal), "weather 1980-": judge(late, cal), "weather all years": judge(windows, cal)}


def timed(fn, repeat: int = 5) -> tuple[float, float]:
    """Median wall and CPU seconds of ``fn``: on shared cores the wall time includes waiting for one."""
    wall, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return statistics.median(wall), statistics.median(cpu)


def cost(rows: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=rows)
    score = 1 / (1 + np.exp(-1.2 * x))
    cal = CalibrationMap("platt", a=1.6, b=0.0, logit_input=True)
    y = (rng.random(rows) < cal.apply(score)).astype(float)
    labels = np.where(rng.random(rows) < 0.3, y, np.nan)
    pred = score >= 0.5

    est_s = timed(lambda: estimate_performance(cal.apply(score), pred, labels=labels, score=score))
    f1_s = timed(lambda: f1_score(y, pred))
    five_s = timed(lambda: (accuracy_score(y, pred), precision_score(y, pred), recall_score(y, pred), f1_score(y, pred),
                            roc_auc_score(y, score)), repeat=3)
    ts = pd.date_range(end=DEFAULT_NOW - timedelta(seconds=1), periods=rows, freq="500ms")
    log = pd.DataFrame({"ts": ts, "model_name": "m", "model_version": "1", "y_pred": pred.astype(float),
                        "score": score, "y_true": np.where(np.isnan(labels), np.nan, y), "labelled_at": ts})
    ref = {"calibration": cal.to_dict(), "holdout_metrics": {"f1": 0.8, "accuracy": 0.8}}
    trigger = EstimatedPerformanceTrigger({"window": "7d", "drop": {"f1": 0.05, "accuracy": 0.05}})
    ctx_factory = lambda: make_context(log, model_name="m", reference=ref)  # noqa: E731
    source_ctx = ctx_factory()
    eval_s = timed(lambda: trigger.evaluate(source_ctx.__class__(**{  # a fresh read cache every time
        "model_name": "m", "now": source_ctx.now, "source": source_ctx.source, "reference": ref})), repeat=3)
    print(f"\ncost on a {rows:,}-row window (median; 30% labels realized)")
    print(f"{'what':<52}{'wall s':>8}{'cpu s':>8}{'ratio':>8}")
    for what, (wall, cpu) in (("estimate_performance (calibrate + 5 metrics + CIs)", est_s),
                              ("peer: sklearn f1_score on the same rows", f1_s),
                              ("peer: sklearn accuracy+precision+recall+f1+roc_auc", five_s),
                              ("trigger.evaluate (in-memory window read + estimate)", eval_s)):
        print(f"{what:<52}{wall:>8.3f}{cpu:>8.3f}{cpu / est_s[1]:>8.2f}")
    print(f"(ratio = cpu time / estimate_performance's; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores;"
          " goal: the estimate under 1 s)")


def store_cost(rows: int) -> None:
    """The trigger over a SQLite store holding a 1M-row window (store built by bench/drift.py's ``build``)."""
    import importlib.util
    import tempfile

    from retrainer.store import Store
    from retrainer.triggers.context import TriggerContext

    spec = importlib.util.spec_from_file_location("bench_drift", Path(__file__).with_name("drift.py"))
    drift = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(drift)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        t = time.perf_counter()
        drift.build(url, rows, 1, 0.3)
        print(f"\nbuilt store: {rows:,} rows, 30% labelled, in {time.perf_counter() - t:.0f} s")
        ref = {"calibration": CalibrationMap("platt", a=1.0, b=0.0, logit_input=True).to_dict(),
               "holdout_metrics": {"f1": 0.5, "accuracy": 0.5}}
        trigger = EstimatedPerformanceTrigger({"window": "1d", "drop": {"f1": 0.05, "accuracy": 0.05}})
        with Store.open(url) as store:
            now = drift.T0 + timedelta(days=1)
            wall, cpu = timed(lambda: trigger.evaluate(TriggerContext(model_name="bench", now=now, source=store,
                                                                      reference=ref)), repeat=3)
        print(f"trigger.evaluate over the SQLite store (read {rows:,} scored rows + estimate): "
              f"wall {wall:.3f} s, cpu {cpu:.3f} s")


def print_table(results: dict[str, dict[str, float]]) -> None:
    head = (f"{'windows of':<38}{'n_win':>6}{'MAE acc':>9}{'MAE f1':>8}{'MAE auc':>9}{'bias f1':>9}"
            f"{'cov acc':>9}{'cov f1':>8}{'cov auc':>9}")
    print("\n" + head)
    for name, r in results.items():
        print(f"{name:<38}{r['windows']:>6}{r['mae_accuracy']:>9.4f}{r['mae_f1']:>8.4f}{r['mae_roc_auc']:>9.4f}"
              f"{r['bias_f1']:>+9.4f}{r['cover_accuracy']:>9.2f}{r['cover_f1']:>8.2f}{r['cover_roc_auc']:>9.2f}")
    print("(MAE: |estimate - realized| per window; bias: mean estimate - realized; cov: realized inside the 95% CI)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=200, help="windows of 2,000 rows per demo world")
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the cost window")
    ap.add_argument("--cost-only", action="store_true", help="only the cost table")
    ap.add_argument("--store", action="store_true", help="also time the trigger over a SQLite store (builds it first)")
    ap.add_argument("--smoke", action="store_true",
                    help="5 windows, 20,000 rows, with --store: proves the bench runs (tests/test_benches.py)")
    args = ap.parse_args()
    if args.smoke:
        args.windows, args.rows, args.store = 5, 20_000, True
    if not args.cost_only:
        results = demo_worlds(args.windows)
        results |= weather() or {}
        print_table(results)
    cost(args.rows)
    if args.store:
        store_cost(args.rows)


if __name__ == "__main__":
    main()
