"""Inputs that must not corrupt the loop, through the real app: labels must be a class of the
champion, numbers sent as strings or booleans are refused (unless coercion is configured), a
label time far in the future is refused (422 naming the field), one before its prediction is
raised to it and said so, a correction wins, and a label sent right after its prediction is
never reported unknown."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from serving_env import Env, held_prediction_writes, running

from retrainer.deployments.serving.app import create_app
from retrainer.deployments.serving.serving import PredictionService


def _service(env: Env, store, **overrides) -> PredictionService:
    cfg = env.config(str(store.engine.url), **overrides)
    return PredictionService.from_config(cfg, store=store, registry=env.registry, reload_interval=0.2)


def _stored_label(store, rid: str):
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT label FROM labels WHERE request_id = :r"), {"r": rid}).scalar()


def test_labels_must_be_a_class_and_in_time(env: Env, store) -> None:
    with running(create_app(_service(env, store))) as url:
        rid = httpx.post(url + "/predict", json={"features": {"x1": 1.0, "x2": 0.0}, "request_id": "r1"}).json()["request_id"]
        for bad in (0.5, 7, -1e300):
            r = httpx.post(url + "/feedback", json={"request_id": rid, "label": bad})
            assert r.status_code == 422 and "label" in r.json()["detail"] and "not a class of the model (0, 1)" in r.json()["detail"]
        batch = httpx.post(url + "/feedback", json={"labels": [{"request_id": rid, "label": 1}, {"request_id": "r2", "label": 2}]})
        assert batch.status_code == 422 and "row 1: label: 2.0" in batch.json()["detail"]
        assert _stored_label(store, rid) is None  # nothing written from a rejected batch

        future = httpx.post(url + "/feedback", json={"request_id": rid, "label": 1, "ts": "2999-01-01T00:00:00Z"})
        assert future.status_code == 422 and "ts: 2999-01-01" in future.json()["detail"]
        assert httpx.post(url + "/feedback", json={"request_id": rid, "label": 1}).status_code == 200
        assert httpx.post(url + "/feedback", json={"request_id": rid, "label": 0}).status_code == 200  # the correction
        assert _stored_label(store, rid) == 0.0
        for as_text in ("1", True):
            r = httpx.post(url + "/feedback", json={"request_id": rid, "label": as_text})
            assert r.status_code == 422 and "label" in r.json()["detail"]


def test_numbers_as_strings_or_booleans_are_refused_unless_coercion_is_on(env: Env, store) -> None:
    with running(create_app(_service(env, store))) as url:
        for value in ("1.5", True):
            r = httpx.post(url + "/predict", json={"features": {"x1": value, "x2": 0.0}})
            assert r.status_code == 422 and "features.x1" in r.json()["detail"], r.text
        ok = httpx.post(url + "/predict", json={"features": {"x1": 1, "x2": 0.0}})  # a JSON integer is a number
        assert ok.status_code == 200
    with running(create_app(_service(env, store, serving={"coerce_numeric_strings": True}))) as url:
        r = httpx.post(url + "/predict", json={"features": {"x1": "1.5", "x2": 0.0}, "request_id": "coerced"})
        assert r.status_code == 200
        flag = httpx.post(url + "/predict", json={"features": {"x1": True, "x2": 0.0}})
        assert flag.status_code == 422 and "features.x1" in flag.json()["detail"]
        assert httpx.post(url + "/feedback", json={"request_id": "coerced", "label": "1"}).status_code == 200
    assert _stored_label(store, "coerced") == 1.0


@pytest.mark.parametrize("serving", [{"commit": "spool"}, {"durability": "buffered"}, {"commit": "store"}],
                         ids=["spool", "buffered", "group-commit"])
def test_a_label_right_after_its_prediction_is_never_unknown_and_an_early_label_time_is_raised(
        env: Env, store, monkeypatch: pytest.MonkeyPatch, serving: dict) -> None:
    svc = _service(env, store, serving=serving)
    with running(create_app(svc)) as url:
        # Spooled and buffered rows reach the store after the answer: hold them there, as under load.
        release = None if serving.get("commit") == "store" else held_prediction_writes(store, monkeypatch)
        assert httpx.post(url + "/predict", json={"features": {"x1": 1.0, "x2": 0.0}, "request_id": "now"}).status_code == 200
        r = httpx.post(url + "/feedback", json={"request_id": "now", "label": 1})
        assert r.json() == {"written": 1, "unknown_request_ids": [], "clamped_request_ids": []}
        made = httpx.post(url + "/predict", json={"features": {"x1": 1.0, "x2": 0.0}}).json()["request_id"]  # a server-made id
        early = httpx.post(url + "/feedback", json={"labels": [
            {"request_id": made, "label": 0, "ts": "2000-01-01T00:00:00Z"}, {"request_id": "never-answered", "label": 1}]})
        assert early.json() == {"written": 2, "unknown_request_ids": ["never-answered"], "clamped_request_ids": [made]}
        if release is not None:
            release.set()
    with store.engine.connect() as conn:
        label_ts, ts = conn.execute(sa.text("SELECT label_ts, ts FROM predictions WHERE request_id = :r"), {"r": made}).one()
    assert label_ts == ts  # raised to the prediction's time: the label delay is 0, not -26 years
