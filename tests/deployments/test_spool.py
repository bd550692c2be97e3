"""The prediction spool (``serving.commit: spool``): frames survive a torn tail, a crashed
server's segment is stored by the next one and deleted, full segments go once stored, a failed
write or fsync answers 503, the fsync process answers in order and follows rotations, its death
falls back to syncing on the loop, and nothing (file or process) is left behind by a clean stop."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from serving_env import FEATURES, Env, running

import retrainer.deployments.serving.spool as spool_mod
from retrainer.config import FeatureSpec
from retrainer.deployments.serving import fsync_worker
from retrainer.deployments.serving.app import create_app
from retrainer.deployments.serving.serving import PredictionService
from retrainer.deployments.serving.spool import PredictionSpool, decode_frames, encode_group, spool_directory
from retrainer.deployments.serving.writer import Assignment, InferenceLogWriter, LogWriteFailed
from retrainer.store import Store
from retrainer.store.records import PredictionRecord
from retrainer.store.schema import predictions

TS = datetime(2025, 6, 1, 12, 30, 15, 123456, tzinfo=UTC)


def rec(rid: str, x1: float = 1.5, **kw: Any) -> PredictionRecord:
    return PredictionRecord(rid, {"x1": x1, "x2": -2.0, "colour": "red"}, 1.0, TS, "3", **kw)


def stored_ids(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(predictions.c.request_id)).scalars())


def test_frames_round_trip_and_a_torn_or_corrupt_tail_ends_the_segment() -> None:
    g1 = [rec("a", unit_id="u1", arm="challenger", score=0.25, ab_test_id=7), Assignment(7, "u1", "challenger")]
    g2 = [rec("b", x1=float("nan")), rec("c")]
    data = encode_group(g1) + encode_group(g2)
    groups, torn = decode_frames(data)
    assert torn == 0 and groups[0] == g1
    assert [r.request_id for r in groups[1]] == ["b", "c"] and groups[1][0].features["x1"] != groups[1][0].features["x1"]
    assert groups[0][0].ts == TS  # microseconds and UTC kept
    # A write the crash cut short: only whole frames count.
    cut = data + encode_group([rec("d")])[:-3]
    groups, torn = decode_frames(cut)
    assert len(groups) == 2 and torn == len(encode_group([rec("d")])) - 3
    # A flipped byte in the second frame's payload: its checksum fails, it and what follows are not read.
    bad = bytearray(data)
    bad[-5] ^= 0xFF
    groups, torn = decode_frames(bytes(bad))
    assert len(groups) == 1 and torn == len(encode_group(g2))


async def _append(spool: PredictionSpool, groups: list[list[Any]]) -> list[Any]:
    """Each group acknowledged (one flush) before the next is appended."""
    items = []
    for rows in groups:
        ack, item = spool.append(rows)
        await ack
        items.append(item)
    return items


def crashed_segment(directory: Path, model: str, groups: list[list[Any]]) -> Path:
    """A spool whose server died after acknowledging ``groups`` and before storing them."""
    spool = PredictionSpool(directory, model)
    spool.open()
    asyncio.run(_append(spool, groups))
    seg = spool._segment
    assert seg is not None and spool._syncer is not None
    spool._syncer.kill()  # the process is gone (its fsync process sees that and exits) ...
    spool._syncer.wait()
    os.close(seg.fd)  # ... and its lock with it; the file stays
    return seg.path


def test_the_next_server_stores_what_a_crashed_one_acknowledged_and_deletes_the_segment(env: Env, store: Store) -> None:
    cfg = env.config(str(store.engine.url), serving={"commit": "spool"})
    directory = spool_directory(cfg)
    assert directory == Path(str(store.engine.url.database) + "-spool")  # beside the SQLite store
    path = crashed_segment(directory, env.registry.model_name, [[rec("lost-1")], [rec("lost-2"), rec("lost-3")]])
    # A live server's segment in the same directory is not touched.
    live = PredictionSpool(directory, env.registry.model_name)
    live.open()
    other_model = crashed_segment(directory, "another-model", [[rec("not-ours")]])
    svc = PredictionService.from_config(cfg, store=store, registry=env.registry, reload_interval=60)
    with running(create_app(svc)):
        pass  # start replays, stop drains
    assert stored_ids(store) == {"lost-1", "lost-2", "lost-3"}
    assert not path.exists() and other_model.exists()
    assert live._segment is not None and live._segment.path.exists()
    assert svc.spool is not None and svc.spool.stats.replayed_segments == 1 and svc.spool.stats.replayed_groups == 2
    live.close()
    assert sorted(p.name for p in directory.iterdir()) == [other_model.name]  # the server's own went on stop


def test_full_segments_are_deleted_once_their_rows_are_stored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              store: Store) -> None:
    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 300)  # a couple of frames per segment
    spool = PredictionSpool(tmp_path / "spool", "m")
    spool.open()
    writer = InferenceLogWriter(store, "m", [FeatureSpec(**f) for f in FEATURES], linger=0.01)
    items = asyncio.run(_append(spool, [[rec(f"r{i}")] for i in range(12)]))
    segments = list((tmp_path / "spool").iterdir())
    assert len(segments) >= 4  # rotated while nothing was stored yet: every segment is kept
    writer.start()
    for item in items:
        writer.submit(item)
    assert writer.flush(30)
    assert len(list((tmp_path / "spool").iterdir())) == 1  # only the one still appended to
    writer.close()
    spool.close()
    assert list((tmp_path / "spool").iterdir()) == []
    assert stored_ids(store) == {f"r{i}" for i in range(12)}


def test_a_failed_spool_write_answers_503_and_the_spool_goes_on(env: Env, store: Store,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = env.config(str(store.engine.url), serving={"commit": "spool"})
    svc = PredictionService.from_config(cfg, store=store, registry=env.registry, reload_interval=60)
    real = spool_mod._write_all

    def full(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])  # a torn frame, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    with running(create_app(svc)) as url:
        monkeypatch.setattr(spool_mod, "_write_all", full)
        failed = httpx.post(url + "/predict", json={"features": {"x1": 1.0, "x2": 2.0}})
        monkeypatch.setattr(spool_mod, "_write_all", real)
        assert failed.status_code == 503
        assert failed.json()["detail"].startswith("prediction not stored: the prediction spool could not write")
        ok = httpx.post(url + "/predict", json={"features": {"x1": 1.0, "x2": 2.0}, "request_id": "after"})
        assert ok.status_code == 200
        status = httpx.get(url + "/admin/status").json()["spool"]
        assert status["failures"] == 1 and "No space left" in status["last_error"]
        assert status["fsync_process"] == svc.spool._syncer.pid  # type: ignore[union-attr]
    assert "after" in stored_ids(store)
    # The failed write was cut back off the file: a replay would not stop at a torn frame.
    assert svc.spool is not None and svc.spool.stats.torn_bytes == 0


def test_an_unwritable_spool_directory_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    spool = PredictionSpool(blocker / "spool", "m")
    with pytest.raises(LogWriteFailed, match="cannot open the prediction spool in .*set serving.spool_dir"):
        spool.open()


def test_spool_dir_is_resolved_next_to_the_config_and_defaults_beside_the_store(env: Env, tmp_path: Path) -> None:
    from retrainer.config import parse_config

    base = {"model": {"name": "m"}, "data": {"source": {"table": "t"}, "features": [{"name": "x1"}]}}
    cfg = parse_config({**base, "serving": {"spool_dir": "spool-here"}}, base_dir=tmp_path, environ={})
    assert spool_directory(cfg) == tmp_path / "spool-here"
    cfg = parse_config(base, base_dir=tmp_path, environ={})
    assert spool_directory(cfg) == tmp_path / "retrainer.db-spool"
    cfg = parse_config({**base, "store": {"url": "postgresql+psycopg://u@h/db"}}, base_dir=tmp_path, environ={})
    assert spool_directory(cfg) == tmp_path / "retrainer-spool"


# -- the fsync process -------------------------------------------------------------------------


def spawn_worker(fd: int) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    ours, proc = fsync_worker.spawn(fd)  # the command line the spool uses
    ours.settimeout(10)
    return ours, proc


def answers(sock: socket.socket, requests: int) -> list[tuple[int, int]]:
    """Read (count, errno) answers until they cover ``requests`` sync requests."""
    out: list[tuple[int, int]] = []
    while sum(c for c, _ in out) < requests:
        out.append(fsync_worker.REPLY.unpack(sock.recv(fsync_worker.REPLY.size)))
    return out


def test_the_fsync_process_answers_in_order_follows_a_new_file_reports_errors_and_ends_with_the_server(
        tmp_path: Path) -> None:
    first = os.open(tmp_path / "a", os.O_WRONLY | os.O_CREAT, 0o600)
    sock, proc = spawn_worker(first)
    sock.send(fsync_worker.SYNC)
    assert answers(sock, 1) == [(1, 0)]  # started and serving
    # Ctrl-C or a service manager's SIGTERM reaches the whole process group: the server still
    # drains its requests, so the worker stays until the server closes the socket.
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)
    for _ in range(3):
        sock.send(fsync_worker.SYNC)
    got = answers(sock, 3)
    assert sum(c for c, _ in got) == 3 and all(err == 0 for _, err in got)  # queued requests may share a flush
    # A new file (the spool rotated): then fdatasync on a pipe fails with EINVAL, and says so.
    r, w = os.pipe()
    sock.send(fsync_worker.SYNC)
    socket.send_fds(sock, [fsync_worker.NEXT_FILE], [r])
    sock.send(fsync_worker.SYNC)
    assert answers(sock, 2) == [(1, 0), (1, errno.EINVAL)]  # the old file's request first, then the pipe's
    sock.close()  # the server stops (or dies): the worker ends on its own
    assert proc.wait(10) == 0
    for fd in (first, r, w):
        os.close(fd)


def test_a_failed_fsync_answers_503_and_later_requests_are_acknowledged(tmp_path: Path) -> None:
    spool = PredictionSpool(tmp_path / "spool", "m")
    spool.open()
    spool._stop_syncer()  # replaced by the same protocol served in a thread whose first fdatasync fails
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setblocking(False)
    spool._sock = ours
    calls: list[int] = []

    def failing_once(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(errno.EIO, "Input/output error")
        os.fdatasync(fd)

    assert spool._segment is not None
    worker = threading.Thread(target=fsync_worker.serve, args=(theirs, spool._segment.fd, failing_once), daemon=True)
    worker.start()

    async def scenario() -> None:
        ack, _ = spool.append([rec("fails")])
        with pytest.raises(LogWriteFailed, match="could not write .*Input/output error.*same request_id"):
            await ack
        ack, _ = spool.append([rec("ok")])
        await ack

    asyncio.run(scenario())
    assert spool.stats.failures == 1 and "Input/output error" in (spool.stats.last_error or "")
    assert spool.stats.groups == 1 and spool.stats.requests == 1
    spool._sock = None
    ours.close()
    worker.join(10)
    assert not worker.is_alive()
    spool.close()


def test_if_the_fsync_process_dies_the_loop_syncs_and_nothing_waits_forever(tmp_path: Path,
                                                                             caplog: pytest.LogCaptureFixture) -> None:
    spool = PredictionSpool(tmp_path / "spool", "m")
    spool.open()
    proc = spool._syncer
    assert proc is not None

    async def scenario() -> None:
        ack, _ = spool.append([rec("before")])
        await asyncio.wait_for(ack, 10)
        proc.kill()
        proc.wait()
        ack, _ = spool.append([rec("after")])  # asked of a dead process: answered by the loop instead
        await asyncio.wait_for(ack, 10)
        ack, _ = spool.append([rec("later")])
        await asyncio.wait_for(ack, 10)

    asyncio.run(scenario())
    assert spool._syncer is None and spool.stats.requests == 3 and spool.stats.failures == 0
    assert spool.status()["fsync_process"] is None  # an operator sees the fallback
    assert "the fsync process stopped answering" in caplog.text
    segment = spool._segment
    assert segment is not None
    groups, torn = decode_frames(segment.path.read_bytes())
    assert [g[0].request_id for g in groups] == ["before", "after", "later"] and torn == 0
    spool.close()


def test_a_stopped_spool_leaves_no_fsync_process(tmp_path: Path) -> None:
    spool = PredictionSpool(tmp_path / "spool", "m")
    spool.open()
    proc = spool._syncer
    assert proc is not None and proc.poll() is None
    spool.close()
    assert proc.poll() == 0


# -- issue 20: paths where an acknowledged row could be lost or misattributed -------------------


def _replay_into(store: Store, directory: Path, model: str) -> PredictionSpool:
    """A new server's start for ``model``: replay what dead servers left, store it, stop."""
    spool = PredictionSpool(directory, model)
    spool.open()
    writer = InferenceLogWriter(store, model, [FeatureSpec(**f) for f in FEATURES], linger=0.01)
    writer.start()
    spool.replay(writer.submit)
    assert writer.flush(30)
    writer.close()
    spool.close()
    return spool


def stored_by_model(store: Store) -> set[tuple[str, str]]:
    with store.engine.connect() as conn:
        return {tuple(row) for row in conn.execute(sa.select(predictions.c.model_name, predictions.c.request_id))}


def test_models_with_dotted_names_sharing_a_directory_replay_only_their_own_segments(tmp_path: Path,
                                                                                      store: Store) -> None:
    directory = tmp_path / "spool"
    eu = crashed_segment(directory, "churn.eu", [[rec("eu-1")], [rec("eu-2")]])
    plain = crashed_segment(directory, "churn", [[rec("plain-1")]])
    _replay_into(store, directory, "churn")
    assert stored_by_model(store) == {("churn", "plain-1")}  # not churn.eu's rows under churn
    assert eu.exists() and not plain.exists()
    _replay_into(store, directory, "churn.eu")
    assert stored_by_model(store) == {("churn", "plain-1"), ("churn.eu", "eu-1"), ("churn.eu", "eu-2")}
    assert list(directory.iterdir()) == []
    # Names the old sanitiser folded together stay apart.
    assert len({spool_mod.encoded_model_name(n) for n in ("a b", "a_b", "a/b", "a%20b")}) == 4
    assert spool_mod.segment_model("churn.eu.123.0123456789ab.spool") == "churn.eu"


def test_a_replayed_row_the_store_refuses_is_set_aside_never_deleted_with_its_segment(
        tmp_path: Path, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "spool"
    bad = PredictionRecord("bad", {"x1": "not a number", "x2": 1.0}, 1.0, TS, "3")
    path = crashed_segment(directory, "m", [[rec("good-1"), bad], [rec("good-2")]])
    spool = _replay_into(store, directory, "m")
    assert stored_ids(store) == {"good-1", "good-2"}
    assert not path.exists()  # everything else is stored: the segment goes ...
    aside = path.with_suffix(".rejected")
    groups, torn = decode_frames(aside.read_bytes())  # ... and the refused row is kept beside it
    assert torn == 0 and [[r.request_id for r in g] for g in groups] == [["bad"]]
    assert groups[0][0].features == bad.features
    assert spool.stats.rejected_rows == 1 and spool.status()["rejected_rows"] == 1
    assert f"kept in {aside}" in caplog.text
    # Renamed back to a segment, it is replayed like one (and refused again, kept again).
    aside.rename(path)
    _replay_into(store, directory, "m")
    assert aside.exists() and not path.exists()


def test_if_the_fsync_process_dies_between_a_rotation_and_its_sync_the_old_segment_is_synced(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_mod, "SEGMENT_BYTES", 1)  # every flush rotates
    spool = PredictionSpool(tmp_path / "spool", "m")
    spool.open()
    proc = spool._syncer
    assert proc is not None and spool._segment is not None
    old = spool._segment.path
    synced: list[str] = []
    real = os.fdatasync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fdatasync", recording)

    async def scenario() -> None:
        os.kill(proc.pid, signal.SIGSTOP)  # it is told of the group, then of the new segment, and syncs neither
        ack, _ = spool.append([rec("in-the-old-segment")])
        await asyncio.sleep(0.1)
        assert not ack.done() and spool._segment is not None and spool._segment.path != old  # rotated
        proc.kill()  # dies before syncing: the loop falls back
        await asyncio.wait_for(ack, 10)

    asyncio.run(scenario())
    assert str(old) in synced  # the group's own segment, not only the new current one
    spool.close()


def test_a_failed_write_that_cannot_be_cut_off_never_hides_later_acknowledged_frames(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "spool"
    spool = PredictionSpool(directory, "m")
    spool.open()
    real_write, real_truncate, real_new = spool_mod._write_all, os.ftruncate, spool._new_segment

    def full(fd: int, data: bytes) -> None:
        os.write(fd, data[: len(data) // 2])  # a torn frame, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    def cannot_truncate(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    def cannot_create() -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    async def scenario() -> None:
        ack, _ = spool.append([rec("before")])
        await ack
        monkeypatch.setattr(spool_mod, "_write_all", full)
        monkeypatch.setattr(os, "ftruncate", cannot_truncate)
        ack, _ = spool.append([rec("failed-1")])
        with pytest.raises(LogWriteFailed, match="No space left"):
            await ack
        monkeypatch.setattr(spool_mod, "_write_all", real_write)
        ack, _ = spool.append([rec("after-1")])  # goes on in a new segment, after the torn one
        await ack
        # Worse: neither a cut nor a new segment is possible: refused (503), not hidden.
        monkeypatch.setattr(spool_mod, "_write_all", full)
        monkeypatch.setattr(spool, "_new_segment", cannot_create)
        ack, _ = spool.append([rec("failed-2")])
        with pytest.raises(LogWriteFailed):
            await ack
        monkeypatch.setattr(spool_mod, "_write_all", real_write)
        ack, _ = spool.append([rec("refused")])
        with pytest.raises(LogWriteFailed, match="cannot append: segment .* cannot be cut off"):
            await ack
        monkeypatch.setattr(os, "ftruncate", real_truncate)  # the disk recovers: the tail is cut now
        monkeypatch.setattr(spool, "_new_segment", real_new)
        ack, _ = spool.append([rec("after-2")])
        await ack

    asyncio.run(scenario())
    # What a replay after a crash would read: every segment, whole frames up to a torn tail.
    read = [r.request_id for p in sorted(directory.glob("*.spool"), key=lambda p: p.stat().st_mtime)
            for g in decode_frames(p.read_bytes())[0] for r in g]
    assert sorted(read) == ["after-1", "after-2", "before"]
    assert "cannot cut a failed write off" in caplog.text
    spool.close()
