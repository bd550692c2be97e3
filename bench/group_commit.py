"""Group-commit benchmark: what one small serving transaction costs the store.

    .venv/bin/python bench/group_commit.py [--calls 2000] [--rounds 5] [--groups 1 4 16]

``Store.log_predictions`` of ``g`` served rows (8 numeric features, an A/B test id) in one
transaction, on SQLite files with 4 KiB pages (what ``retrainer store init`` makes) and with
16 KiB pages (the previous default), measured interleaved round by round. Printed: ms per
transaction and per row (median over rounds) and the 16 KiB / 4 KiB ratio per round, the
figure to read on a shared machine. Everything lives in a temp dir.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from retrainer.config import FeatureSpec
from retrainer.store.records import PredictionRecord
from retrainer.store.store import Store

FEATURES = [FeatureSpec(name=f"f{i}") for i in range(8)]


def open_store(path: Path, page_size: int) -> tuple[Store, int]:
    # The page size of a SQLite file is fixed once it is in WAL mode: set it before the store opens it.
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA page_size = {int(page_size)}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    store = Store.open(f"sqlite:///{path}")
    store.init()
    test_id = store.start_ab_test("bench", champion_version="1", challenger_version="2", split=0.5, salt="s")
    return store, test_id


def one_group(store: Store, test_id: int, group: int, k: int) -> None:
    now = datetime.now(UTC)
    rows = [PredictionRecord(request_id=uuid.uuid4().hex, features={f.name: 0.25 * j for j, f in enumerate(FEATURES)},
                             prediction=1.0, ts=now, model_version="1", unit_id=f"u{k % 500}", arm="champion",
                             score=0.7, ab_test_id=test_id) for _ in range(group)]
    store.log_predictions("bench", rows, FEATURES)


def per_transaction(store: Store, test_id: int, group: int, calls: int) -> float:
    t0 = time.perf_counter()
    for k in range(calls):
        one_group(store, test_id, group, k)
    return (time.perf_counter() - t0) / calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--groups", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--smoke", action="store_true", help="a few seconds' worth: proves the bench runs (tests/test_benches.py); its figures mean little")
    args = ap.parse_args()
    if args.smoke:
        args.calls, args.rounds, args.groups = 20, 2, [1, 4]
    with tempfile.TemporaryDirectory(prefix="retrainer-group-commit-") as tmp:
        stores = {size: open_store(Path(tmp) / f"store-{size}.db", size) for size in (4096, 16384)}
        for store, test_id in stores.values():  # warm up: statement caches, first pages
            per_transaction(store, test_id, 4, 200)
        print(f"Store.log_predictions, SQLite WAL, {args.calls} transactions x {args.rounds} rounds (medians)")
        print(f"{'rows/tx':>7s} {'4 KiB ms/tx':>12s} {'ms/row':>8s} {'16 KiB ms/tx':>13s} {'ms/row':>8s} {'16K/4K':>7s}")
        for group in args.groups:
            times: dict[int, list[float]] = {4096: [], 16384: []}
            for r in range(args.rounds):
                order = (4096, 16384) if r % 2 == 0 else (16384, 4096)  # each side first in half the rounds
                for size in order:
                    times[size].append(per_transaction(*stores[size], group, args.calls))
            ratio = statistics.median(b / a for a, b in zip(times[4096], times[16384], strict=True))
            small, big = statistics.median(times[4096]) * 1e3, statistics.median(times[16384]) * 1e3
            print(f"{group:7d} {small:12.3f} {small / group:8.3f} {big:13.3f} {big / group:8.3f} {ratio:7.2f}")
        for store, _ in stores.values():
            store.close()


if __name__ == "__main__":
    main()
