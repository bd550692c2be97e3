"""`retrainer demo` in a temporary directory, smaller: the story it tells must be true."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from retrainer.cli import main

pytestmark = pytest.mark.slow
DRIFT_DAY = 18


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("demo")
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["demo", "--workdir", str(workdir), "--days", "36", "--drift-day", str(DRIFT_DAY),
                     "--rows-per-day", "200", "--json"])
    assert code == 0, out.getvalue()[-3000:]
    return json.loads(out.getvalue())


def test_no_fire_before_the_drift_and_drift_among_the_reasons_after_it(demo):
    fires = demo["trigger_fires"]
    assert all(day >= DRIFT_DAY for days in fires.values() for day in days), fires
    assert fires["drift"] and fires["performance"]
    policy_retrains = [r for r in demo["retrains"] if r["reasons"] != ["initial"]]
    assert policy_retrains, demo["retrains"]
    assert all(r["day"] >= DRIFT_DAY for r in policy_retrains)
    assert "drift" in policy_retrains[0]["reasons"]


def test_a_new_version_is_registered_shadowed_ab_tested_and_promoted(demo):
    assert demo["versions_registered"][0] == "1"
    assert len(demo["versions_registered"]) >= 2
    assert demo["versions_promoted"][0] == "1" and len(demo["versions_promoted"]) >= 2, demo["ledger"]
    actions = [e["action"] for e in demo["ledger"]]
    for step in ("shadow_start", "shadow_stop", "ab_start", "ab_stop"):
        assert step in actions
    assert actions.index("shadow_start") < actions.index("ab_start") < len(actions) - 1 - actions[::-1].index("promote")
    assert "promote_challenger" in demo["ab_verdicts"].values(), demo["ab_verdicts"]


def test_the_rollout_flow_moved_each_challenger_and_the_summary_lists_its_stages_with_dates(demo):
    rollouts = demo["rollouts"]
    assert rollouts, demo["ledger"]
    for r in rollouts:
        stages = [s["stage"] for s in r["stages"]]
        assert stages[:2] == ["staged", "shadow"], r  # rollout.mode: shadow, started by the retrain flow
        assert [s["at"] for s in r["stages"]] == sorted(s["at"] for s in r["stages"])
        assert all(DRIFT_DAY <= s["day"] <= 36 for s in r["stages"]), r  # day 36 = the end of the last day
    graduated = [r for r in rollouts if [s["stage"] for s in r["stages"]][:4] == ["staged", "shadow", "ab", "champion"]]
    assert graduated, [[s["stage"] for s in r["stages"]] for r in rollouts]
    # The ledger's promotions after the first model are exactly the rollouts that reached champion.
    promoted = [m for m in demo["champion_moves"] if m["action"] == "promote"][1:]
    assert [m["to"] for m in promoted] == [r["version"] for r in rollouts if "champion" in [s["stage"] for s in r["stages"]]]
    summary = open(demo["reports"]["summary"], encoding="utf-8").read()
    first = graduated[0]
    assert "## Rollouts" in summary
    for s in first["stages"]:
        assert f"{s['stage']} (day {s['day']}, {s['at'][:10]})" in summary


def test_the_report_files_exist_and_the_png_is_a_valid_image(demo):
    reports = demo["reports"]
    with Image.open(reports["timeline"]) as png:
        png.verify()
        assert png.format == "PNG" and png.size[0] > 600
    html = open(reports["drift_report"], encoding="utf-8").read()
    assert "<html" in html.lower() and len(html) > 10_000
    summary = open(reports["summary"], encoding="utf-8").read()
    assert "## When each trigger fired" in summary and "promote_challenger" in summary


def test_the_summary_names_when_the_estimate_crossed_and_when_matured_labels_confirmed(demo):
    lead = demo["lead_time"]
    fires = demo["trigger_fires"]
    crossed = min(fires["estimated_performance"], default=None)
    assert lead["estimate_crossed_day"] == crossed
    confirmed = min((d for d in fires["performance"] if crossed is None or d >= crossed), default=None)
    assert confirmed is not None and lead["labels_confirmed_day"] == confirmed
    assert lead["lead_days"] == (None if crossed is None else confirmed - crossed)
    summary = open(demo["reports"]["summary"], encoding="utf-8").read()
    assert "## Estimated vs realized performance" in summary and f"**day {confirmed}**" in summary
