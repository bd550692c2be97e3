"""`retrainer demo` at the ends of its traffic range, 50 and 2,000 requests a day: the story's
first half holds at both (quiet before the drift, the drift detected, a retrain on a full training
window, the challenger handed to the rollout), nothing crashes, and the report is written.

Whether the challenger is promoted is the rollout rule's business (issue 19): at 2,000 a day the
A/B test reaches a verdict; at 50 a day today's rule cannot reach one within the test's 8 days and
keeps the champion — asserted as such, so a better rule shows up here as a changed expectation.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest

from retrainer.cli import main

# 2,000 requests a day for 18 days go one by one through the service: ~11 minutes on a busy 2-core box.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]
DRIFT_DAY = 18
DAYS = 32  # 14 days after the drift: the least the sizing asks for at 50 a day (13 at 2,000)


@pytest.fixture(scope="module", params=[50, 2000], ids=lambda r: f"{r}-a-day")
def demo(request, tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp(f"demo-{request.param}")
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["demo", "--workdir", str(workdir), "--days", str(DAYS), "--drift-day", str(DRIFT_DAY),
                     "--rows-per-day", str(request.param), "--json"])
    assert code == 0, out.getvalue()[-3000:]
    return json.loads(out.getvalue())


def test_the_settings_follow_the_traffic(demo):
    size = demo["sizing"]
    assert size["rows_per_day"] == demo["rows_per_day"]
    assert size["drift_days"] * demo["rows_per_day"] >= 300
    assert (size["train_days"], size["drift_days"]) == ((11, 6) if demo["rows_per_day"] == 50 else (5, 3))


def test_quiet_before_the_drift_then_detected_and_retrained_on_a_full_window(demo):
    fires = demo["trigger_fires"]
    assert all(day >= DRIFT_DAY for days in fires.values() for day in days), fires
    assert fires["drift"] and min(fires["drift"]) <= DRIFT_DAY + demo["sizing"]["drift_days"] + 1, fires
    initial, *policy = demo["retrains"]
    assert initial["status"] == "success" and initial["training_rows"] >= demo["sizing"]["min_rows"]
    assert policy, demo["retrains"]
    first = policy[0]
    assert first["day"] >= DRIFT_DAY and "drift" in first["reasons"], policy
    assert first["status"] == "success" and first["training_rows"] >= demo["sizing"]["min_rows"], first


def test_the_challenger_is_handed_to_the_rollout_and_the_rollout_rule_decides(demo):
    first = demo["rollouts"][0]
    stages = [s["stage"] for s in first["stages"]]
    assert stages[:2] == ["staged", "shadow"], stages
    promoted = [e["to"] for e in demo["ledger"] if e["action"] == "promote"]
    if demo["rows_per_day"] >= 2000:
        assert stages[:4] == ["staged", "shadow", "ab", "champion"], stages
        assert first["version"] in promoted and "promote_challenger" in demo["ab_verdicts"].values()
    else:
        # Today's rule at 50 a day: the A/B test gets no verdict within rollout.ab.duration (or, on a
        # saturated machine, the shadow's latency check rejects first); the champion stays.
        assert promoted == ["1"], demo["ledger"]
        assert set(demo["ab_verdicts"].values()) <= {"keep_collecting"}, demo["ab_verdicts"]


def test_the_report_is_written_and_says_how_the_demo_was_sized(demo):
    for path in demo["reports"].values():
        assert open(path, "rb").read(100)
    summary = open(demo["reports"]["summary"], encoding="utf-8").read()
    assert f"training window {demo['sizing']['train_days']} days" in summary
