"""Benches that cannot rot: every bench/*.py runs with ``--smoke`` (seconds of work), exits 0 and
prints figures. The list is the glob, so a new bench is covered the day it lands; a refactor that
breaks one fails here instead of the next time someone runs ``make bench``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO / ".." / "shared" / "data"  # where CI keeps the real data sets (see COMMON rules)
BENCHES = sorted((REPO / "bench").glob("*.py"))
# A figure: a decimal (0.63, 1.98), a thousands-separated count (5,000) or a ratio (57x).
FIGURE = re.compile(r"\d\.\d|\d,\d{3}|\d+(\.\d+)?\s*x\b")


def test_the_benches_are_found():
    assert {"flow.py", "store.py", "drift.py"} <= {b.name for b in BENCHES}


@pytest.mark.slow
@pytest.mark.parametrize("bench", BENCHES, ids=[b.stem for b in BENCHES])
def test_bench_runs_with_smoke_and_prints_figures(bench: Path, tmp_path: Path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(bench), "--smoke"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=1500)
    tail = (done.stdout + done.stderr)[-4000:]
    if done.returncode != 0 and "shared/data" in done.stderr and not SHARED_DATA.is_dir():
        pytest.skip(f"{bench.name} reads ../shared/data, which is not next to this checkout")
    assert done.returncode == 0, tail
    figures = [line for line in done.stdout.splitlines() if FIGURE.search(line)]
    assert figures, f"{bench.name} --smoke printed no figures:\n{tail}"
