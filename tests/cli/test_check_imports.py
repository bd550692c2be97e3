"""``retrainer check`` on a small window imports neither scipy.stats, nor Alembic, nor MLflow (issue 20).

The check runs the demo policy (performance, drift on numeric and categorical features, schedule)
over a week of predictions with their labels, in the world ``bench/check.py`` times, plus a drift
trigger on raw values judged by p-value (exact KS, chi-square); these
imports cost ~0.4 s (scipy.stats), ~0.1 s (Alembic) and ~1.25 s (MLflow) of CPU. Checked in a
fresh process (``sys.modules`` at the end of the command), never by timing.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parents[2] / "bench" / "check.py"
HEAVY = ("scipy.stats", "alembic", "mlflow")

_RUN = """
import json, sys
from retrainer.cli import main
code = main(["check", "--config", sys.argv[1], "--no-audit", "--json", "--at", sys.argv[2]])
heavy = %r
print(json.dumps({"code": code, "imported": sorted(m for m in sys.modules if m.startswith(heavy))[:5]}))
""" % (HEAVY,)


def test_a_small_check_imports_no_scipy_stats_alembic_or_mlflow(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_check", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    config, now = bench.build_world(tmp_path, days=7)
    cfg = yaml.safe_load(config.read_text())
    cfg["triggers"].append({"type": "drift", "name": "drift_raw", "window": "3d", "read": "raw", "statistic": "pvalue",
                           "top": 20})
    config.write_text(yaml.safe_dump(cfg))
    done = subprocess.run([sys.executable, "-c", _RUN, str(config), now], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    *report, last = done.stdout.strip().splitlines()
    assert json.loads(last) == {"code": 0, "imported": []}
    checks = json.loads("\n".join(report))["checks"]
    assert checks["performance"]["status"] in ("ok", "fired")
    assert checks["performance"]["evidence"]["n_labelled"] > 200
    assert checks["drift"]["status"] in ("ok", "fired")
    raw = checks["drift_raw"]
    assert raw["status"] in ("ok", "fired") and raw["evidence"]["read"] == "raw"
    kinds = {f["kind"] for f in raw["evidence"]["top"]}
    assert kinds == {"numeric", "categorical"}
    assert all(0 < f["ks_pvalue"] <= 1 for f in raw["evidence"]["top"] if f["kind"] == "numeric")
