"""The prediction service behind a real uvicorn on loopback, with concurrent clients."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest
from serving_env import Broken, Env, Slow, running

from retrainer.deployments.rollout.ab import arm_for
from retrainer.deployments.serving.app import create_app
from retrainer.deployments.serving.router import registry_loader
from retrainer.deployments.serving.serving import PredictionService
from retrainer.deployments.serving.shadow_worker import ShadowModelSource
from retrainer.registry import CHAMPION


def instance(i: int) -> dict[str, Any]:
    return {"x1": float(np.sin(i)), "x2": float(np.cos(i)), "colour": ["red", "green", None][i % 3]}


def service(env: Env, store, *, loader=None, shadow_source=None, **cfg_overrides) -> PredictionService:
    cfg = env.config(str(store.engine.url), **cfg_overrides)
    return PredictionService.from_config(cfg, store=store, registry=env.registry, loader=loader, reload_interval=0.2,
                                         shadow_source=shadow_source)


async def fire(url: str, bodies: list[dict[str, Any]], concurrency: int = 8, headers=None) -> list[httpx.Response]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, headers=headers) as client:
        async def one(body):
            async with sem:
                return await client.post("/predict", json=body)
        return await asyncio.gather(*(one(b) for b in bodies))


@pytest.mark.parametrize("commit", ["store", "spool"])
def test_predictions_logged_exactly_once_and_labels_join(env: Env, store, commit: str) -> None:
    svc = service(env, store, serving={"commit": commit})
    bodies = [{"features": instance(i), "request_id": f"single-{i}"} for i in range(120)]
    bodies += [{"instances": [instance(i + k) for k in range(5)], "request_id": f"batch-{i}"} for i in range(20)]
    with running(create_app(svc)) as url:
        responses = asyncio.run(fire(url, bodies, concurrency=12))
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200][:3]
        # A retried request id is answered but logged once.
        again = httpx.post(url + "/predict", json={"features": instance(0), "request_id": "single-0"})
        assert again.status_code == 200 and again.json()["duplicate"] is True
        ids = [r.json()["request_id"] for r in responses[:120]]
        ids += [rid for r in responses[120:] for rid in r.json()["request_ids"]]
        labels = [{"request_id": rid, "label": int(k % 2)} for k, rid in enumerate(ids)]
        fb = httpx.post(url + "/feedback", json={"labels": labels})
        assert fb.status_code == 200 and fb.json()["written"] == 220
        one = httpx.post(url + "/feedback", json={"request_id": "single-1", "label": 1})
        assert one.status_code == 200
    # The server is stopped: the writer has flushed.
    assert len(set(ids)) == 220
    far = datetime.now(UTC) + timedelta(days=1)
    since = datetime.now(UTC) - timedelta(days=1)
    assert store.count_predictions(env.registry.model_name, since, far) == 220
    # Spool: recognised before it was logged (the service remembers the ids it answered); group
    # commit: the store ignored the second insert. Either way written once.
    assert svc.writer.stats.duplicates == (0 if commit == "spool" else 1)
    assert svc.writer.stats.predictions_written == 220
    window = store.labelled_window(env.registry.model_name, since, far, as_of=far)
    assert len(window) == 220 and window.coverage == 1.0
    features = store.features_window(env.registry.model_name, since, far, ["x1", "x2", "colour"])
    assert len(features) == 220 and set(features.columns["colour"].tolist()) == {"red", "green", None}


def test_ab_arms_are_sticky_and_recorded(env: Env, store) -> None:
    name = env.registry.model_name
    salt, split = "sticky-salt", 0.5
    test_id = store.start_ab_test(name, champion_version=env.versions[0], challenger_version=env.versions[1],
                                  split=split, salt=salt)
    svc = service(env, store)
    units = [f"user-{i}" for i in range(40)]
    bodies = [{"features": instance(i), "unit_id": u} for i in range(3) for u in units]
    with running(create_app(svc)) as url:
        responses = asyncio.run(fire(url, bodies, concurrency=10))
    seen: dict[str, set[tuple[str, str]]] = {}
    for body, r in zip(bodies, responses):
        assert r.status_code == 200
        j = r.json()
        seen.setdefault(body["unit_id"], set()).add((j["arm"], j["model_version"]))
    for unit, arms in seen.items():
        assert len(arms) == 1, (unit, arms)  # sticky
        arm, version = next(iter(arms))
        assert arm == arm_for(salt, unit, split)
        assert version == (env.versions[1] if arm == "challenger" else env.versions[0])
    counts = store.assignment_counts(test_id)
    assert sum(counts.values()) == 40
    assert counts.get("challenger", 0) == sum(arm_for(salt, u, split) == "challenger" for u in units)
    store.stop_ab_test(test_id, reason="test over")


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_slow_and_failing_shadow_leave_production_untouched(env: Env, store, isolation: str) -> None:
    name = env.registry.model_name
    features = env.config(str(store.engine.url)).data.features
    real = registry_loader(env.registry, features)
    slow_v, broken_v = env.versions[1], env.versions[2]

    def loader(version: str):
        m = real(version)
        return Slow(m, 1.0) if version == slow_v else Broken(m) if version == broken_v else m

    # nice 0: on a busy test host a niced shadow process would take long to start (not what is tested)
    rollout = {"mode": "direct", "shadow": {"queue_size": 4, "workers": 1, "isolation": isolation, "nice": 0}}
    bodies = [{"features": instance(i)} for i in range(150)]
    kw: dict[str, Any] = {"loader": loader, "rollout": rollout}
    if isolation == "process":  # the shadow process loads from the registry and wraps the same way
        kw["shadow_source"] = ShadowModelSource.from_registry(
            env.registry, features, loader="serving_env:wrapped_registry_model",
            loader_kwargs={"slow": slow_v, "broken": broken_v, "delay": 1.0})

    # The champion's answers, without any server or shadow.
    champion = real(env.versions[0])
    expected = champion.predict({f: [b["features"].get(f) for b in bodies] for f in ("x1", "x2", "colour")})[0].tolist()

    store.append_ledger(name, action="shadow_start", from_version=env.versions[0], to_version=slow_v,
                        actor="test", reason="slow shadow", details={"sample": 1.0})
    svc = service(env, store, **kw)
    with running(create_app(svc)) as url:
        assert httpx.get(url + "/ready").json()["shadow"]["version"] == slow_v
        t0 = time.perf_counter()
        responses = asyncio.run(fire(url, bodies))
        elapsed = time.perf_counter() - t0
        assert [r.json()["prediction"] for r in responses] == expected
        assert {r.json()["model_version"] for r in responses} == {env.versions[0]}
        # 150 requests against a 1 s shadow model: had anything waited on it, this took 150 s. Compared
        # with that counterfactual, not a fixed budget (the group commit per request is slow on a busy host).
        assert elapsed < 0.25 * len(bodies) * 1.0, elapsed
        status = httpx.get(url + "/admin/status").json()["shadow"]
        assert status["dropped"] > 100
        metrics = httpx.get(url + "/metrics").text
        assert "retrainer_shadow_dropped_total" in metrics

        # Switch the shadow to a model that raises: production answers stay identical.
        store.append_ledger(name, action="shadow_start", from_version=env.versions[0], to_version=broken_v,
                            actor="test", reason="broken shadow")
        assert httpx.post(url + "/admin/reload").json()["routing"]["shadow"]["version"] == broken_v
        assert svc.shadow.wait_idle(60)  # the slow shadow's queue has drained: room for broken jobs
        responses = asyncio.run(fire(url, bodies))
        assert all(r.status_code == 200 for r in responses)
        assert [r.json()["prediction"] for r in responses] == expected
        assert svc.shadow.wait_idle(60)
        status = httpx.get(url + "/admin/status").json()["shadow"]
        assert status["errors"] > 0 and "broken" in status["last_error"]
        assert status["isolation"] == isolation
        if isolation == "process":
            assert status["process_starts"] >= 1 and status["process_deaths"] == 0
    # Stored: slow-shadow comparisons with both latencies, broken-shadow error rows.
    rows = store.shadow_rows(name)
    slow_rows = [r for r in rows if r.shadow_version == slow_v]
    error_rows = [r for r in rows if r.shadow_version == broken_v]
    # Each request carries its share of a batched 1 s shadow call: the shares add up to whole seconds.
    assert slow_rows and all(r.error is None and r.latency_ms > 0 and r.champion_latency_ms < 1000 for r in slow_rows)
    assert sum(r.latency_ms for r in slow_rows) >= 1000
    assert error_rows and all(r.shadow_prediction is None and "broken" in r.error for r in error_rows)
    store.append_ledger(name, action="shadow_stop", from_version=None, to_version=broken_v, actor="test", reason="done")


def test_reload_when_the_alias_moves_without_failing_requests(env: Env, store) -> None:
    svc = service(env, store)
    try:
        with running(create_app(svc)) as url:
            assert httpx.get(url + "/ready").json()["champion"] == env.versions[0]

            async def hammer() -> list[httpx.Response]:
                async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                    out = []
                    deadline = time.monotonic() + 60
                    while time.monotonic() < deadline:
                        out.append(await client.post("/predict", json={"features": instance(len(out))}))
                        if out[-1].json().get("model_version") == env.versions[2]:
                            break
                    return out

            async def move() -> None:
                await asyncio.sleep(0.3)
                await asyncio.to_thread(env.registry.set_alias, CHAMPION, env.versions[2])

            async def both():
                results, _ = await asyncio.gather(hammer(), move())
                return results

            results = asyncio.run(both())
            assert all(r.status_code == 200 for r in results)
            versions = [r.json()["model_version"] for r in results]
            assert versions[0] == env.versions[0] and versions[-1] == env.versions[2]
    finally:
        env.registry.set_alias(CHAMPION, env.versions[0])


def test_serving_loads_the_stores_champion_when_the_alias_lags_and_repairs_the_alias(env: Env, store) -> None:
    name = env.registry.model_name
    # The store moved to version 2 but MLflow's alias still says version 1 (the alias move failed).
    store.swap_champion(name, expected=None, new=env.versions[1], action="promote", actor="test", reason="lag")
    assert env.registry.alias_version(CHAMPION) == env.versions[0]
    svc = service(env, store)
    svc.start()
    try:
        assert svc.router.routing is not None and svc.router.routing.champion.version == env.versions[1]
        assert env.registry.alias_version(CHAMPION) == env.versions[1]
        # A later move of the store's pointer alone reaches serving on the next reload, alias in tow.
        store.swap_champion(name, expected=env.versions[1], new=env.versions[2], action="promote",
                            actor="test", reason="next")
        assert svc.router.refresh() and svc.router.routing.champion.version == env.versions[2]
        assert env.registry.alias_version(CHAMPION) == env.versions[2]
    finally:
        svc.stop()
        env.registry.set_alias(CHAMPION, env.versions[0])  # the registry is shared by the session


def test_auth_limits_validation_and_probes(env: Env, store, monkeypatch) -> None:
    cfg = env.config(str(store.engine.url), serving={"api_token": "s3cret", "max_body_bytes": 2048, "max_batch": 5})
    svc = PredictionService.from_config(cfg, store=store, registry=env.registry)
    auth = {"Authorization": "Bearer s3cret"}
    with running(create_app(svc)) as url:
        assert httpx.get(url + "/health").json() == {"status": "ok"}
        assert httpx.get(url + "/ready").status_code == 200
        body = {"features": instance(1)}
        assert httpx.post(url + "/predict", json=body).status_code == 401
        assert httpx.post(url + "/predict", json=body, headers={"Authorization": "Bearer nope"}).status_code == 401
        assert httpx.post(url + "/feedback", json={"request_id": "x", "label": 1}).status_code == 401
        assert httpx.get(url + "/admin/status").status_code == 401
        assert httpx.post(url + "/predict", json=body, headers=auth).status_code == 200

        bad = httpx.post(url + "/predict", json={"instances": [{"x1": "a lot", "x2": 1.0}]}, headers=auth)
        assert bad.status_code == 422 and "instances[0].x1" in bad.json()["detail"]
        missing = httpx.post(url + "/predict", json={"features": {"x1": 1.0}}, headers=auth)
        assert missing.status_code == 422 and "features.x2" in missing.json()["detail"]
        unknown = httpx.post(url + "/predict", json={"features": {**instance(1), "age": 3}}, headers=auth)
        assert unknown.status_code == 422 and "features.age" in unknown.json()["detail"]
        both = httpx.post(url + "/predict", json={"features": instance(1), "instances": [instance(2)]}, headers=auth)
        assert both.status_code == 422 and "exactly one" in both.json()["detail"]
        too_many = httpx.post(url + "/predict", json={"instances": [instance(i) for i in range(6)]}, headers=auth)
        assert too_many.status_code == 422 and "instances" in too_many.json()["detail"]
        nan = httpx.post(url + "/predict", content=b'{"features": {"x1": NaN, "x2": 1}}',
                         headers={**auth, "content-type": "application/json"})
        assert nan.status_code == 422

        huge = httpx.post(url + "/predict", content=b"{" + b" " * 5000 + b"}",
                          headers={**auth, "content-type": "application/json"})
        assert huge.status_code == 413

        async def chunked():
            async def gen():
                for _ in range(10):
                    yield b" " * 500
            async with httpx.AsyncClient(base_url=url) as c:
                return await c.post("/predict", content=gen(), headers={**auth, "content-type": "application/json"})
        assert asyncio.run(chunked()).status_code == 413

        text = httpx.get(url + "/metrics").text
        for name in ("retrainer_requests_total", "retrainer_predict_latency_seconds_bucket",
                     "retrainer_log_queue_depth", "retrainer_shadow_dropped_total"):
            assert name in text
        assert 'status="unauthorized"' in text and 'status="invalid"' in text
