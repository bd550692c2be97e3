"""The default `retrainer demo` (what `make demo` runs: 200 requests a day, drift from day 22), run as a
user runs it, in its own process: the story it tells must be true (issue 19 §7).

A retrained version is serving at the end, promoted by the posterior of challenger − champion within
10 days of the drift; the summary shows each rollout's posterior by day; nothing third-party (MLflow's
download bars, deprecation warnings) reaches the terminal.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from cli_process import run_cli
from retrainer.demo.runner import DemoSpec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]
DEFAULTS = DemoSpec()
DRIFT_DAY = DEFAULTS.drift_day
LAST_DAY = DEFAULTS.days - 1
# What MLflow and Python print on their own when nothing keeps them quiet.
NOISE = ("Downloading artifacts", "it/s]", "DeprecationWarning", "deprecated", "FutureWarning")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[dict, str]:
    workdir = tmp_path_factory.mktemp("demo")
    done = run_cli("demo", "--workdir", str(workdir), "--json", timeout=1700)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return json.loads(done.stdout), done.stdout + done.stderr


@pytest.fixture(scope="module")
def demo(run) -> dict:
    return run[0]


def test_the_default_story_is_the_one_make_demo_tells(demo):
    assert (demo["rows_per_day"], demo["drift_day"], demo["days_simulated"]) == (200, 22, 26)


def test_no_fire_before_the_drift_and_drift_among_the_reasons_after_it(demo):
    fires = demo["trigger_fires"]
    assert all(day >= DRIFT_DAY for days in fires.values() for day in days), fires
    assert fires["drift"] and fires["performance"]
    policy_retrains = [r for r in demo["retrains"] if r["reasons"] != ["initial"]]
    assert policy_retrains, demo["retrains"]
    assert all(r["day"] >= DRIFT_DAY for r in policy_retrains)
    assert "drift" in policy_retrains[0]["reasons"]


def test_a_retrained_version_is_promoted_within_10_days_of_the_drift_and_serves_at_the_end(demo):
    moves = demo["champion_moves"]
    assert moves[0]["action"] == "promote" and moves[0]["to"] == "1", moves
    promotions = [m for m in moves[1:] if m["action"] == "promote"]
    assert promotions, demo["ledger"]
    assert promotions[0]["day"] - DRIFT_DAY <= 10, promotions  # the promotion at the end of that day
    assert moves[-1]["action"] == "promote" and moves[-1]["to"] != "1", moves  # no rollback after it
    assert demo["versions_promoted"][-1] == moves[-1]["to"]


def test_each_challenger_goes_paired_shadow_to_champion_with_no_ab_test(demo):
    actions = [e["action"] for e in demo["ledger"]]
    assert "shadow_start" in actions and not any(a.startswith("ab_") for a in actions), actions
    rollouts = demo["rollouts"]
    assert rollouts, demo["ledger"]
    for r in rollouts:
        stages = [s["stage"] for s in r["stages"]]
        assert stages[:2] == ["staged", "shadow"] and "ab" not in stages, r
        assert [s["at"] for s in r["stages"]] == sorted(s["at"] for s in r["stages"])
        assert all(DRIFT_DAY <= s["day"] <= LAST_DAY for s in r["stages"]), r
    graduated = [r for r in rollouts if [s["stage"] for s in r["stages"]][:3] == ["staged", "shadow", "champion"]]
    assert graduated, [[s["stage"] for s in r["stages"]] for r in rollouts]
    # The ledger's promotions after the first model are exactly the rollouts that reached champion.
    promoted = [m for m in demo["champion_moves"] if m["action"] == "promote"][1:]
    assert [m["to"] for m in promoted] == [r["version"] for r in graduated]
    # The retrain that made the challenger is listed on the day its rollout was staged.
    retrain_days = {r["version"]: r["day"] for r in demo["retrains"] if r.get("version")}
    assert graduated[0]["stages"][0]["day"] == retrain_days[graduated[0]["version"]]


def test_each_rollout_carries_its_posterior_by_day_and_the_last_look_is_its_decision(demo):
    for r in demo["rollouts"]:
        trail = r["trail"]
        assert trail, r
        days = [t["day"] for t in trail]
        assert days == sorted(set(days)) and days[0] >= r["stages"][0]["day"], days  # one look a day
        for t in trail:
            lo, hi = t["interval"]
            assert lo <= t["mean"] <= hi and 0 <= t["p_worse_than_margin"] <= 1 and t["expected_loss"] >= 0, t
        labelled = [t["n_labelled"] for t in trail]
        assert labelled == sorted(labelled), labelled  # labels only accumulate
        if r["stage"] in ("champion", "guarding") or "champion" in [s["stage"] for s in r["stages"]]:
            last = trail[-1]
            assert last["action"] == "promote" and last["p_worse_than_margin"] <= 0.05, last
            assert last["day"] == next(s["day"] for s in r["stages"] if s["stage"] == "champion")
            assert all(t["action"] == "continue" for t in trail[:-1]), trail


def test_the_summary_lists_stages_and_the_posterior_table_and_the_timeline_has_its_panel(demo):
    summary = open(demo["reports"]["summary"], encoding="utf-8").read()
    assert "## Rollouts" in summary and "## Each rollout's posterior by day" in summary
    for r in demo["rollouts"]:
        for s in r["stages"]:
            assert f"{s['stage']} (day {s['day']}, {s['at'][:10]})" in summary
        for t in r["trail"]:
            lo, hi = t["interval"]
            assert f"| {t['day']} | {t['stage']} | {t['mean']:+.4f} | [{lo:+.4f}, {hi:+.4f}] |" in summary
    with Image.open(demo["reports"]["timeline"]) as png:
        png.verify()
        assert png.format == "PNG" and png.size[0] > 600


def test_the_output_has_no_download_bars_and_no_deprecation_warnings(run):
    _, output = run
    for line in output.splitlines():
        assert not any(n in line for n in NOISE), line


def test_the_drift_report_exists(demo):
    html = open(demo["reports"]["drift_report"], encoding="utf-8").read()
    assert "<html" in html.lower() and len(html) > 10_000
    summary = open(demo["reports"]["summary"], encoding="utf-8").read()
    assert "## When each trigger fired" in summary


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
