"""A re-sent request id is answered with what was stored the first time, flagged ``duplicate``,
never a silent new answer; the stored row is unchanged. A retry after a 503 is made durable like
a new request, and an id still being replayed from the spool after a restart gets its
acknowledged answer."""

from __future__ import annotations

import errno
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from serving_env import Env, held_prediction_writes, running
from test_spool import crashed_segment

import retrainer.deployments.serving.spool as spool_mod
from retrainer.deployments.serving.app import create_app
from retrainer.deployments.serving.serving import PredictionService
from retrainer.deployments.serving.spool import decode_frames, spool_directory
from retrainer.store.records import PredictionRecord


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


def test_a_retry_after_a_503_is_written_and_synced_like_a_new_request(env: Env, store,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The 503 says: retry with the same request_id. That retry must not be a 200 for a row that
    is only in the writer's memory: it is appended and fsync'd again, with the first answer."""
    cfg = env.config(str(store.engine.url), serving={"commit": "spool"})
    svc = PredictionService.from_config(cfg, store=store, registry=env.registry, reload_interval=60)
    real = spool_mod._write_all

    def full(fd: int, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with running(create_app(svc)) as url:
        release = held_prediction_writes(store, monkeypatch)
        monkeypatch.setattr(spool_mod, "_write_all", full)
        failed = httpx.post(url + "/predict", json={"features": {"x1": 3.0, "x2": 3.0}, "request_id": "retry-1"})
        assert failed.status_code == 503 and "same request_id" in failed.json()["detail"]
        monkeypatch.setattr(spool_mod, "_write_all", real)
        retry = httpx.post(url + "/predict", json={"features": {"x1": 3.0, "x2": 3.0}, "request_id": "retry-1"})
        assert retry.status_code == 200
        spool = httpx.get(url + "/admin/status").json()["spool"]
        assert (spool["fsyncs"], spool["requests"], spool["failures"]) == (1, 1, 1)  # the retry was synced
        assert svc.spool is not None and svc.spool._segment is not None
        groups, _ = decode_frames(svc.spool._segment.path.read_bytes())  # what a restart would replay
        assert [[r.request_id for r in g] for g in groups] == [["retry-1"]]
        assert groups[0][0].prediction == retry.json()["prediction"]  # the answer given is the one spooled
        release.set()
    assert tuple(_stored(store, "retry-1")) == (retry.json()["prediction"], retry.json()["score"])


def test_a_resent_id_whose_row_is_still_being_replayed_gets_the_acknowledged_answer(
        env: Env, store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Right after a restart the crashed server's rows are on their way from the spool to the
    store; a client re-sending one of those ids gets what it was answered, not a new answer."""
    cfg = env.config(str(store.engine.url), serving={"commit": "spool"})
    answered = PredictionRecord("before-crash", {"x1": 3.0, "x2": 3.0, "colour": None}, 1.0,
                                datetime(2025, 6, 1, tzinfo=UTC), env.versions[0], score=0.987654)
    crashed_segment(spool_directory(cfg), env.registry.model_name, [[answered]])
    release = held_prediction_writes(store, monkeypatch)
    svc = PredictionService.from_config(cfg, store=store, registry=env.registry, reload_interval=60)
    with running(create_app(svc)) as url:
        again = httpx.post(url + "/predict", json={"features": {"x1": -3.0, "x2": -3.0}, "request_id": "before-crash"})
        assert again.status_code == 200
        body = again.json()
        assert body["duplicate"] is True and (body["prediction"], body["score"]) == (1.0, 0.987654)
        release.set()
    assert tuple(_stored(store, "before-crash")) == (1.0, 0.987654)
