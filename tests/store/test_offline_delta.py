"""The offline Δ a retrain run records, read back per version, and the (offline, online) history
of decided rollouts that the prior's kappa and tau are fitted from."""

from __future__ import annotations

import math
from datetime import timedelta

from retrainer.store import Store

from .conftest import T0

D = timedelta(days=1)


def _run(store: Store, version: str, delta: dict | None, *, at=T0, status: str = "success") -> int:
    run_id = store.start_run("m", flow_run_id=f"f-{version}-{at.isoformat()}", reasons=["manual"], started_at=at)
    store.finish_run(run_id, status=status, metrics={"candidate": {"f1": 0.8}, "offline_delta": delta},
                     version=version, error=None, finished_at=at)
    return run_id


def test_offline_delta_is_read_back_per_version_from_its_newest_run(store: Store) -> None:
    _run(store, "2", {"metric": "f1", "mean": 0.05, "se": 0.01, "n": 400, "interval_95": [0.03, 0.07]})
    _run(store, "3", {"metric": "f1", "mean": -0.01, "se": 0.02, "n": 400})
    _run(store, "3", {"metric": "f1", "mean": 0.02, "se": 0.015, "n": 400}, at=T0 + D)  # a retried run: newest wins
    assert store.offline_delta("m", "2") == (0.05, 0.01)
    assert store.offline_delta("m", "3") == (0.02, 0.015)
    assert store.offline_delta("m", "9") is None  # never trained here
    assert store.offline_delta("other", "2") is None


def test_no_usable_offline_delta_reads_as_none(store: Store) -> None:
    _run(store, "1", None)  # the first model: no champion to compare with
    _run(store, "2", {"metric": "roc_auc", "mean": None, "se": None, "n": 400})  # undefined (no scores)
    run_id = store.start_run("m", flow_run_id="f-failed", reasons=[], started_at=T0)
    store.finish_run(run_id, status="failed", metrics={"offline_delta": {"mean": 0.1, "se": 0.01}}, version="4",
                     error="boom", finished_at=T0)  # a failed run registered nothing usable
    assert [store.offline_delta("m", v) for v in ("1", "2", "4")] == [None, None, None]


def _rollout(store: Store, version: str, *, final: str, posterior_mean: float | None, at) -> int:
    r = store.create_rollout("m", version=version, champion_version="1", mode="shadow", stage="staged", at=at,
                             actor="t", reason="start")
    store.transition_rollout(r.id, expected="staged", new="shadow", at=at, action="rollout_advance", actor="t",
                             reason="shadow", decision="advanced", evidence={"posterior_mean": -0.5})
    evidence = {"posterior": {"posterior_mean": posterior_mean, "p_worse": 0.01}} if posterior_mean is not None else {}
    action = {"champion": "promote", "rejected": "reject", "aborted": "rollout_abort"}[final]
    store.transition_rollout(r.id, expected="shadow", new=final, at=at + D, action=action, actor="t",
                             reason="decided", decision=final, evidence=evidence)
    return r.id


def test_history_pairs_each_decided_rollout_offline_with_its_decision_posterior_mean(store: Store) -> None:
    for v, (off, se) in {"2": (0.04, 0.01), "3": (0.02, 0.01), "4": (0.03, 0.01), "5": (0.01, 0.01)}.items():
        _run(store, v, {"metric": "f1", "mean": off, "se": se, "n": 500})
    _rollout(store, "2", final="champion", posterior_mean=0.021, at=T0)
    _rollout(store, "3", final="rejected", posterior_mean=-0.012, at=T0 + 3 * D)
    _rollout(store, "4", final="aborted", posterior_mean=0.5, at=T0 + 6 * D)  # aborted: nothing decided
    _rollout(store, "5", final="champion", posterior_mean=None, at=T0 + 9 * D)  # no posterior recorded
    _rollout(store, "6", final="rejected", posterior_mean=0.01, at=T0 + 12 * D)  # no offline Δ recorded
    got = store.offline_online_history("m")
    # The shadow step's posterior_mean (-0.5) is not the decision's: only the deciding row counts.
    assert got == [(0.04, 0.021), (0.02, -0.012)]
    assert all(math.isfinite(a) and math.isfinite(b) for a, b in got)
    assert store.offline_online_history("other") == []
