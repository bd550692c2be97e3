"""A re-sent request id is answered with what was stored the first time, flagged ``duplicate``,
never a silent new answer; the stored row is unchanged."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from serving_env import Env, running

from retrainer.deployments.serving.app import create_app
from retrainer.deployments.serving.serving import PredictionService


def _stored(store, rid: str):
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT prediction, score FROM predictions WHERE request_id = :r"), {"r": rid}).one()


@pytest.mark.parametrize("commit", ["spool", "store"])
def test_a_resent_request_id_gets_the_stored_answer(env: Env, store, commit: str) -> None:
    cfg = env.config(str(store.engine.url), serving={"commit": commit})  # durability: committed (the default)
    svc = PredictionService.from_config(cfg, store=store, registry=env.registry, reload_interval=0.2)
    with running(create_app(svc)) as url:
        first = httpx.post(url + "/predict", json={"features": {"x1": 3.0, "x2": 3.0}, "request_id": "dup-1"}).json()
        assert "duplicate" not in first
        # The same id with features that would be answered differently.
        again = httpx.post(url + "/predict", json={"features": {"x1": -3.0, "x2": -3.0}, "request_id": "dup-1"})
        assert again.status_code == 200
        body = again.json()
        assert body["duplicate"] is True
        assert (body["prediction"], body["score"]) == (first["prediction"], first["score"])
        fresh = httpx.post(url + "/predict", json={"features": {"x1": -3.0, "x2": -3.0}, "request_id": "dup-2"}).json()
        assert fresh["prediction"] != first["prediction"]  # so the stored answer really was returned
        batch = httpx.post(url + "/predict", json={"instances": [{"x1": -3.0, "x2": -3.0}] * 2, "request_id": "b"}).json()
        assert "duplicate" not in batch
        rerun = httpx.post(url + "/predict", json={"instances": [{"x1": 3.0, "x2": 3.0}] * 2, "request_id": "b"}).json()
        assert rerun["duplicate"] is True and rerun["predictions"] == batch["predictions"]
        assert rerun["duplicate_request_ids"] == batch["request_ids"]
        if commit == "spool":
            # Answered before the rows reached the store: a duplicate found in the store (this
            # process no longer remembers the id) gets the stored answer too.
            assert svc.writer.flush(30)
            svc._recent.clear()
            third = httpx.post(url + "/predict", json={"features": {"x1": -3.0, "x2": -3.0}, "request_id": "dup-1"}).json()
            assert third["duplicate"] is True and third["prediction"] == first["prediction"]
    assert tuple(_stored(store, "dup-1")) == (first["prediction"], first["score"])
