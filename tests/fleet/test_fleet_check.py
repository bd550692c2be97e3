"""The fleet check: each model's own verdict, on shared reads, then Benjamini-Hochberg across models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests
from typer.testing import CliRunner

from retrainer.cli import app, main
from retrainer.fleet_config import fleet_model_configs, load_fleet_config
from retrainer.flows.fleet import check_fleet
from retrainer.triggers.check import run_check
from retrainer.triggers.fleet import ModelCheck, check_batch, fleet_control, simes

from .conftest import NOW, write_fleet


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_fleet_control_is_benjamini_hochberg_as_statsmodels_computes_it(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.uniform(size=400), rng.uniform(0, 1e-4, 20)])  # 400 quiet, 20 real
    checks = [ModelCheck(f"m{i}", should_retrain=bool(pi < 0.05), pvalue=float(pi)) for i, pi in enumerate(p)]
    checks.append(ModelCheck("scheduled", should_retrain=True))  # no p-value: not a statistical test
    checks.append(ModelCheck("broken", error="StoreError: gone"))
    summary = fleet_control(checks, rate=0.05)
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="fdr_bh")
    want = {f"m{i}" for i in range(p.size) if reject[i] and p[i] < 0.05}
    assert set(summary.fired) == want | {"scheduled"}
    assert set(summary.held_back) == {f"m{i}" for i in range(p.size) if p[i] < 0.05 and not reject[i]}
    assert summary.errors == ["broken"] and summary.n_tested == p.size
    np.testing.assert_allclose([c.adjusted_pvalue for c in checks[: p.size]], adjusted, rtol=1e-12)
    by = {c.model: c for c in checks}
    held = by[summary.held_back[0]]
    assert held.outcome == "held_back" and "BH-adjusted" in held.why and f"over {p.size} models" in held.why
    assert "not subject to the fleet control" in by["scheduled"].why
    off = fleet_control([ModelCheck(c.model, c.should_retrain, pvalue=c.pvalue) for c in checks[:-1]], control="none")
    assert len(off.fired) == int((p < 0.05).sum()) + 1 and off.held_back == []


def test_simes_combines_a_models_pvalues() -> None:
    assert simes([0.01, 0.04, 0.03]) == pytest.approx(0.03)  # min(3*0.01, 3/2*0.03, 0.04)
    assert simes([]) == 1.0


def test_a_batch_gives_each_model_the_verdict_of_its_own_check(fleet_store, tmp_path) -> None:
    url, store = fleet_store
    cfg = load_fleet_config(write_fleet(tmp_path / "fleet.yaml", url, [], discover=True))
    configs = fleet_model_configs(cfg, store.champions())
    batch = {c.model: c for c in check_batch(configs, store, now=NOW)}
    for one in configs:  # the single-model check, unchanged
        alone = run_check(one, store=store, now=NOW, write_audit=False)
        got = batch[one.model.name]
        assert got.should_retrain == alone.should_retrain and got.reasons == alone.reasons
        (drift,) = alone.children
        assert drift.evidence["read"] == "histograms" and got.pvalue == pytest.approx(drift.evidence["pvalue"])
        assert got.checks["drift"]["value"] == pytest.approx(drift.value)
    assert batch["b"].should_retrain and batch["b"].pvalue < 1e-10  # drifted by 1 SD
    audit = store.evaluations("b")
    assert {e.trigger for e in audit} >= {"drift"} and audit[0].evidence.get("read") == "histograms"


def test_check_fleet_and_its_command(fleet_store, tmp_path, capsys) -> None:
    url, _ = fleet_store
    path = write_fleet(tmp_path / "fleet.yaml", url, [{"name": "a"}], discover=True)
    seen = []
    summary = check_fleet(str(path), NOW, progress=lambda done, total: seen.append((done, total)))
    assert summary["n_models"] == 3 and summary["fired"] == ["b"] and summary["n_errors"] == 0
    assert seen == [(2, 3), (3, 3)]  # after each batch of fleet.batch_size 2
    result = CliRunner().invoke(app, ["fleet", "check", "--fleet", str(path), "--at", NOW.isoformat(), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["fired"] == ["b"] and {c["model"]: c["outcome"] for c in out["checks"]}["a"] == "quiet"
    text = CliRunner().invoke(app, ["fleet", "check", "--fleet", str(path), "--at", NOW.isoformat()])
    assert text.exit_code == 0 and "1 retrain" in text.output and "b " in text.output
    assert main(["fleet", "check", "--fleet", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert "fleet file" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_fleet_flow_requests_retrains_the_retrain_flow_can_load(fleet_store, tmp_path, prefect_harness,
                                                                    monkeypatch) -> None:
    import retrainer.tasks.notify as notify
    from retrainer.fleet_config import load_model_config
    from retrainer.flows.fleet import fleet

    requested = []
    monkeypatch.setattr(notify, "request_retrain", lambda model, **kw: requested.append((model, kw)) or "event-id")
    url, _ = fleet_store
    path = write_fleet(tmp_path / "fleet.yaml", url, [], discover=True)
    out = fleet(fleet_path=str(path), now=NOW)
    assert out["fired"] == ["b"] and out["n_models"] == 3
    [(model, kw)] = requested
    assert model == "b" and kw["config_path"].endswith("#b")
    assert load_model_config(kw["config_path"]).model.name == "b"  # what the retrain flow loads


@pytest.mark.parametrize("how", [["--flow"], ["--dask", "local"], ["--dask", "<scheduler>"]])
def test_fleet_check_runs_the_fleet_flow(fleet_store, tmp_path, prefect_harness, monkeypatch, capsys, how) -> None:
    import contextlib

    import retrainer.tasks.notify as notify

    monkeypatch.setattr(notify, "request_retrain", lambda model, **kw: "event-id")
    url, _ = fleet_store
    path = write_fleet(tmp_path / "fleet.yaml", url, [], discover=True)
    with contextlib.ExitStack() as stack:
        if how[-1] == "<scheduler>":  # an existing cluster, reached by its address as a user's would be
            from distributed import LocalCluster

            cluster = stack.enter_context(LocalCluster(n_workers=1, processes=False, dashboard_address=None))
            how = ["--dask", cluster.scheduler_address]
        assert main(["fleet", "check", "--fleet", str(path), "--at", NOW.isoformat(), "--json", *how]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["fired"] == ["b"] and out["n_models"] == 3
    assert [c["event_id"] for c in out["checks"] if c["outcome"] == "fired"] == ["event-id"]


def test_an_unreachable_dask_scheduler_is_one_line_naming_it(fleet_store, tmp_path, prefect_harness, capsys) -> None:
    import dask

    url, _ = fleet_store
    path = write_fleet(tmp_path / "fleet.yaml", url, [], discover=True)
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        assert main(["fleet", "check", "--fleet", str(path), "--at", NOW.isoformat(), "--dask", "tcp://127.0.0.1:1"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "could not reach the Dask scheduler at tcp://127.0.0.1:1" in err[0]
    assert "Traceback" not in captured.err + captured.out and "Connecting to an existing Dask cluster" not in captured.err


@pytest.mark.parametrize("how", [["--flow"], ["--dask", "local"]])
def test_a_fleet_whose_store_has_no_schema_fails_in_one_line_from_every_process(tmp_path, prefect_harness, capfd,
                                                                                monkeypatch, how) -> None:
    # capfd: the Dask workers are processes of their own, writing to the same file descriptor 2.
    monkeypatch.delenv("RETRAINER_DEBUG", raising=False)
    path = write_fleet(tmp_path / "fleet.yaml", f"sqlite:///{tmp_path / 'empty.db'}", [{"name": "a"}])
    assert main(["fleet", "check", "--fleet", str(path), "--at", NOW.isoformat(), *how]) == 2
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no retrainer schema" in lines[0] and "retrainer store init" in lines[0], err
    assert "Retry" not in err  # a missing schema is not retried (only I/O failures are)
