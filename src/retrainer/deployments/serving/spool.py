"""The prediction spool: how ``serving.commit: spool`` acknowledges a request (the default,
``store``, is a group commit into the store: docs/serving.md says why, measured).

A request's log rows are appended to an append-only file on local disk and ``fdatasync``'d
before the answer is sent; the same rows go to the inference-log writer, which stores them in
big batches off the request path (as in ``buffered`` mode). A segment file is deleted once every
row appended to it is in the store. After a crash the next ``retrainer serve`` on the same spool
directory writes what is left into the store (idempotent on ``request_id``) before deleting it.

How a group is made durable: the requests of one loop iteration share one ``write`` (the event
loop does it: a page-cache copy, microseconds) and one sync request to a small fsync process
(:mod:`retrainer.deployments.serving.fsync_worker`), which calls ``fdatasync`` and answers on a socket
the loop watches; requests arriving while a flush runs share the next one. The loop never blocks
on the disk and no thread has to win the GIL back to acknowledge. Measured side by side
(docs/serving.md, *Durability*): ``fdatasync`` on the loop blocked it ~10% of the time under
load, on a thread it was slower still; the group commit straight into the store
(``serving.commit: store``) costs a transaction and a cross-thread wake-up per group. If the
fsync process cannot start or dies, the loop syncs itself (slower, as durable).

File format, one frame per flushed group: ``<u32 length><u32 crc32>`` + a JSON payload
``{"p": [[request_id, features, prediction, ts, version, unit, arm, score, ab_test_id], ...],
"a": [[ab_test_id, unit, arm], ...]}``. A frame whose length or checksum does not match (a
write torn by the crash: never acknowledged) ends the segment. Each live server holds an
exclusive ``flock`` on its own segments, so a second server on the same directory replays only
what dead ones left.

Segment names are ``<model>.<pid>.<12 hex>.spool`` with the model name percent-encoded
(:func:`segment_model`): read from the right, the name says whose segment it is even when model
names contain dots (``churn`` never replays ``churn.eu``'s). A replayed row the store refuses
is never lost with its segment: it is set aside in ``<segment>.rejected`` (same frame format;
rename it back to ``.spool`` to replay it once the cause is fixed) and logged.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import re
import socket
import struct
import subprocess
import threading
import urllib.parse
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrainer.deployments.serving import fsync_worker
from retrainer.deployments.serving.writer import Assignment, LogWriteFailed, Spooled, running_loop, settle_waiters
from retrainer.store.records import PredictionRecord, from_epoch, to_epoch

if TYPE_CHECKING:
    from retrainer.config import RetrainerConfig

log = logging.getLogger(__name__)

SEGMENT_BYTES = 16 << 20  # a full segment is closed and deleted once its rows are stored
_HEADER = struct.Struct("<II")
_SEGMENT_NAME = re.compile(r"(?P<model>.+)\.(?P<pid>[0-9]+)\.(?P<id>[0-9a-f]{12})\.spool")


def segment_model(filename: str) -> str | None:
    """The (percent-encoded) model name a segment file belongs to; None: not a segment name.
    Parsed from the right: the pid and id parts have fixed forms, so dots in the model name
    cannot shift them."""
    m = _SEGMENT_NAME.fullmatch(filename)
    return None if m is None else m["model"]


def encoded_model_name(model_name: str) -> str:
    """A model name as it appears in segment names: percent-encoded (injective; names made of
    letters, digits, ``_``, ``.`` and ``-`` stay as they are, so older segments still match)."""
    return urllib.parse.quote(model_name, safe="")


def spool_directory(cfg: RetrainerConfig) -> Path:
    """``serving.spool_dir``, else beside a SQLite store (the same disk: as durable as the store
    itself), else ``retrainer-spool`` next to the config."""
    if cfg.serving.spool_dir:
        return Path(cfg.serving.spool_dir)
    url = cfg.store.url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///") + "-spool")
    return (cfg.base_dir or Path.cwd()) / "retrainer-spool"


def encode_group(rows: list[Any]) -> bytes:
    """One frame for the prediction and assignment rows of a flushed group."""
    preds = [[r.request_id, dict(r.features), r.prediction, to_epoch(r.ts), r.model_version, r.unit_id, r.arm,
              r.score, r.ab_test_id] for r in rows if isinstance(r, PredictionRecord)]
    assigns = [[a.ab_test_id, a.unit_id, a.arm] for a in rows if isinstance(a, Assignment)]
    payload = json.dumps({"p": preds, "a": assigns}, separators=(",", ":")).encode()
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_frames(data: bytes) -> tuple[list[list[Any]], int]:
    """The row groups of a segment's bytes, and how many trailing bytes were torn (not a whole frame)."""
    groups: list[list[Any]] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, pos)
        payload = data[pos + _HEADER.size : pos + _HEADER.size + length]
        if len(payload) != length or zlib.crc32(payload) != crc:
            break
        body = json.loads(payload)
        rows: list[Any] = [
            PredictionRecord(rid, feats, pred, from_epoch(ts), ver, unit, arm, score, test)  # type: ignore[arg-type]
            for rid, feats, pred, ts, ver, unit, arm, score, test in body["p"]
        ]
        rows += [Assignment(test, unit, arm) for test, unit, arm in body["a"]]
        groups.append(rows)
        pos += _HEADER.size + length
    return groups, len(data) - pos


@dataclass
class _Segment:
    path: Path
    fd: int
    size: int = 0
    pending: int = 0  # log items appended (or replayed) from here and not yet stored
    closed: bool = False  # nothing more is appended: deleted when pending reaches 0
    deleted: bool = False  # its rows are all stored and the file is gone (fd closed)
    torn: bool = False  # a failed write left bytes that could not be cut off: append nothing more here


@dataclass
class SpoolStats:
    groups: int = 0  # fdatasync'd appends: requests / groups = requests per fsync
    requests: int = 0
    bytes: int = 0
    failures: int = 0  # appends that failed (disk full, I/O error): those requests answered 503
    replayed_segments: int = 0
    replayed_groups: int = 0
    torn_bytes: int = 0  # bytes at the end of a crashed segment that were never a whole frame
    segments_deleted: int = 0
    rejected_rows: int = 0  # spooled rows the store refused: set aside in <segment>.rejected, not lost
    last_error: str | None = field(default=None)


class PredictionSpool:
    """One server's spool in ``directory`` for ``model_name`` (see the module docstring)."""

    def __init__(self, directory: Path, model_name: str) -> None:
        self.directory = Path(directory)
        self.model_name = model_name
        self.encoded_name = encoded_model_name(model_name)
        self.stats = SpoolStats()
        self._lock = threading.Lock()  # segments' pending counts: the loop appends, the writer releases
        self._segment: _Segment | None = None
        self._frames: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        # The fsync process (None: the loop syncs itself), the loop watching its answers, and the
        # groups it has not answered yet, oldest first, each with the segment it was written to
        # (after a rotation the oldest may be in the previous one).
        self._syncer: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: list[tuple[_Segment, list[asyncio.Future[None]]]] = []

    # -- lifecycle ------------------------------------------------------------------------------

    def open(self) -> None:
        """Create the directory (owner-only: it holds features) and this server's first segment
        (once: a second call does nothing)."""
        if self._segment is not None:
            return
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._segment = self._new_segment()
        except OSError as exc:
            raise LogWriteFailed(f"cannot open the prediction spool in {self.directory}: {exc}; set serving.spool_dir "
                                 "to a writable local directory") from None
        self._start_syncer(self._segment.fd)

    def _start_syncer(self, fd: int) -> None:
        try:
            self._sock, self._syncer = fsync_worker.spawn(fd)
        except OSError as exc:
            log.warning("prediction spool: no fsync process (%s); the event loop syncs the spool itself", exc)
            return
        self._sock.setblocking(False)

    def _new_segment(self) -> _Segment:
        path = self.directory / f"{self.encoded_name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.spool"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours alone: another server never replays it
        _fsync_dir(self.directory)
        return _Segment(path, fd)

    def leftovers(self) -> Iterator[tuple[_Segment, list[list[Any]]]]:
        """Segments of this model that no live server holds (a crashed one left them), locked and
        read: each with its row groups. Empty ones are deleted at once."""
        for path in sorted(self.directory.glob("*.spool")):
            if segment_model(path.name) != self.encoded_name:
                continue  # another model's (a dotted name is no prefix match: see segment_model)
            if self._segment is not None and path == self._segment.path:
                continue
            try:
                fd = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                continue  # another server replayed and deleted it meanwhile
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)  # a live server's segment
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            groups, torn = decode_frames(data)
            self.stats.replayed_segments += 1
            self.stats.replayed_groups += len(groups)
            self.stats.torn_bytes += torn
            if torn:
                log.warning("spool %s: %d bytes at the end were not a whole frame (a write the crash cut short; "
                            "never acknowledged): ignored", path.name, torn)
            seg = _Segment(path, fd, size=len(data), closed=True)
            if not groups:
                self._delete(seg)
                continue
            yield seg, groups

    def replay(self, submit: Callable[[Spooled], None],
               remember: Callable[[list[Any]], None] | None = None) -> int:
        """Hand every group a crashed server left to ``submit`` (the log writer); each segment is
        deleted once all its rows are stored. ``remember`` sees each group first, so the service
        answers a re-sent id with its acknowledged answer while the row is still on its way to
        the store. Returns the number of prediction rows handed over."""
        n = 0
        for seg, groups in self.leftovers():
            with self._lock:
                seg.pending += len(groups)
            for rows in groups:
                n += sum(isinstance(r, PredictionRecord) for r in rows)
                if remember is not None:
                    remember(rows)
                submit(Spooled(rows, self._releaser(seg)))
        if n:
            log.warning("prediction spool: %d acknowledged predictions a previous server left are being stored", n)
        return n

    def close(self) -> None:
        """Stop appending; the segment is deleted if its rows are all stored (else kept for replay).
        Requests still waiting for the fsync process are synced here (a stop drains requests first,
        so normally there are none)."""
        seg, self._segment = self._segment, None
        waiting = self._stop_syncer()
        outcomes = self._sync_groups(waiting)
        if outcomes and self._loop is not None and not self._loop.is_closed():
            for waiters, failure in outcomes:
                self._loop.call_soon_threadsafe(settle_waiters, waiters, failure)
        if seg is not None:
            self._retire(seg)

    def _stop_syncer(self, *, kill: bool = False) -> list[tuple[_Segment, list[asyncio.Future[None]]]]:
        """End the fsync process (from any thread; ``kill``: it misbehaved) and return the groups
        still waiting for it, oldest first, with their segments: the caller syncs and settles them."""
        waiting, self._inflight = self._inflight, []
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the process sees the end now, from any thread
            except OSError:
                pass  # it is gone already
            loop = self._loop
            if loop is None or loop.is_closed():
                sock.close()
            elif loop.is_running() and loop is not running_loop():
                loop.call_soon_threadsafe(self._unwatch, loop, sock)  # the loop's selector is the loop's to change
            else:
                self._unwatch(loop, sock)
        if self._syncer is not None:
            if kill:
                self._syncer.kill()
            try:
                self._syncer.wait(5)  # it exits when our end closes
            except subprocess.TimeoutExpired:
                self._syncer.kill()
                self._syncer.wait()
            self._syncer = None
        return waiting

    # -- the request path (event loop) ------------------------------------------------------------

    def append(self, rows: list[Any]) -> tuple[asyncio.Future[None], Spooled]:
        """Queue ``rows`` for this loop iteration's flush. Returns the future that resolves once they
        are fsync'd (or fails with LogWriteFailed) and the item to hand to the log writer."""
        seg = self._segment
        if seg is None:
            raise LogWriteFailed("the prediction spool is closed (the server is shutting down); retry the request")
        loop = asyncio.get_running_loop()
        ack: asyncio.Future[None] = loop.create_future()
        if not self._waiters:
            loop.call_soon(self._flush)
        self._frames.append(encode_group(rows))
        self._waiters.append(ack)
        with self._lock:
            seg.pending += 1
        return ack, Spooled(rows, self._releaser(seg))

    def _flush(self) -> None:
        frames, waiters = self._frames, self._waiters
        self._frames, self._waiters = [], []
        seg = self._segment
        if seg is None:
            self._settle(waiters, LogWriteFailed("the prediction spool closed before the write; retry the request"))
            return
        if seg.torn:
            if (refused := self._leave_torn(seg, len(waiters))) is not None:
                self._settle(waiters, refused)
                return
            seg = self._segment
            assert seg is not None
        data = b"".join(frames)
        try:
            _write_all(seg.fd, data)
        except OSError as exc:
            failure = self._failed(exc, len(waiters))
            self._cut_back(seg)
            self._settle(waiters, failure)
            return
        seg.size += len(data)
        self.stats.bytes += len(data)
        if not self._ask_syncer(seg, waiters):
            self._settle(waiters, self._sync_segment(seg, len(waiters)))
        if seg.size >= SEGMENT_BYTES:
            self._rotate()

    def _cut_back(self, seg: _Segment) -> None:
        """After a failed write: its bytes must go before anything more is appended, or a replay
        stops at the torn frame and never reads the acknowledged frames after it."""
        seg.torn = True
        self._leave_torn(seg, 0)

    def _leave_torn(self, seg: _Segment, requests: int) -> LogWriteFailed | None:
        """``seg`` ends in bytes that are not a whole frame: cut them off, or go on in a new
        segment (the torn tail then ends the old one, after all its acknowledged frames). If
        neither works, refuse: the ``requests`` of this flush answer 503 until one of them does."""
        try:
            os.ftruncate(seg.fd, seg.size)
        except OSError as cut:
            self.stats.last_error = f"{type(cut).__name__}: {cut}"
            log.error("prediction spool: cannot cut a failed write off %s (%s); no more appends to it",
                      seg.path.name, cut)
            if self._rotate():
                return None
            self.stats.failures += requests
            return LogWriteFailed(f"the prediction spool cannot append: segment {seg.path.name} ends in a failed write "
                                  f"that cannot be cut off ({cut}) and no new segment can be started; free the disk "
                                  "holding serving.spool_dir, then retry the request with the same request_id")
        seg.torn = False
        return None

    def _ask_syncer(self, seg: _Segment, waiters: list[asyncio.Future[None]]) -> bool:
        """Hand the group to the fsync process; False when there is none (the caller syncs)."""
        if self._sock is None:
            return False
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # the first flush, or a new loop (tests run several)
            if self._inflight:
                self._syncer_gone("its answers were watched by an event loop that has gone")
                return False
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._sock.fileno())
            self._loop = loop
            loop.add_reader(self._sock.fileno(), self._answered, self._sock)
        try:
            self._sock.send(fsync_worker.SYNC)
        except OSError as exc:
            self._syncer_gone(str(exc))
            return False
        self._inflight.append((seg, waiters))
        return True

    def _answered(self, sock: socket.socket) -> None:
        """The fsync process answered (on the loop): settle the groups its flush covered."""
        while sock is self._sock:  # else a stopped syncer's socket, about to be unwatched
            try:
                msg = sock.recv(fsync_worker.REPLY.size)
            except BlockingIOError:
                return
            except OSError as exc:
                self._syncer_gone(str(exc))
                return
            if not msg:
                self._syncer_gone("it exited")
                return
            count, err = fsync_worker.REPLY.unpack(msg)
            done, self._inflight = self._inflight[:count], self._inflight[count:]
            waiting = [w for _seg, group in done for w in group]
            failure = self._failed(OSError(err, os.strerror(err)), len(waiting)) if err else None
            self._settle(waiting, failure)

    @staticmethod
    def _unwatch(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        loop.remove_reader(sock.fileno())
        sock.close()

    def _syncer_gone(self, why: str) -> None:
        """The fsync process cannot be used: sync what it was asked for here, and from now on."""
        log.error("prediction spool: the fsync process stopped answering (%s); the event loop syncs the spool itself", why)
        for waiters, failure in self._sync_groups(self._stop_syncer(kill=True)):
            self._settle(waiters, failure)

    def _sync_groups(
        self, groups: list[tuple[_Segment, list[asyncio.Future[None]]]],
    ) -> list[tuple[list[asyncio.Future[None]], LogWriteFailed | None]]:
        """Sync here every segment the fsync process was asked about and did not answer for —
        after a rotation that is the previous segment too, not only the current one — and say
        how each group ends."""
        by_segment: dict[int, tuple[_Segment, list[asyncio.Future[None]]]] = {}
        for seg, waiters in groups:
            by_segment.setdefault(id(seg), (seg, []))[1].extend(waiters)
        return [(waiters, self._sync_segment(seg, len(waiters))) for seg, waiters in by_segment.values()]

    def _sync_segment(self, seg: _Segment, requests: int) -> LogWriteFailed | None:
        with self._lock:  # the writer thread may be deleting it: then its rows are all in the store
            if seg.deleted:
                return None
            try:
                os.fdatasync(seg.fd)
            except OSError as exc:
                return self._failed(exc, requests)
        return None

    def _failed(self, exc: OSError, requests: int) -> LogWriteFailed:
        self.stats.failures += requests
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        log.error("prediction spool write failed (%d requests answer 503): %s", requests, exc)
        return LogWriteFailed(f"the prediction spool could not write ({exc}); retry the request with the same request_id")

    def _settle(self, waiting: list[asyncio.Future[None]], failure: LogWriteFailed | None) -> None:
        if failure is None:
            self.stats.groups += 1
            self.stats.requests += len(waiting)
        settle_waiters(waiting, failure)

    def _rotate(self) -> bool:
        """Go on in a new segment; False if none can be made (a full segment then keeps growing
        rather than failing requests)."""
        try:
            new = self._new_segment()
        except OSError as exc:
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.error("prediction spool: cannot start a new segment (%s); the current one stays in use", exc)
            return False
        if self._sock is not None:
            try:  # the fsync process syncs the old segment's last groups, then follows
                socket.send_fds(self._sock, [fsync_worker.NEXT_FILE], [new.fd])
            except OSError as exc:
                self._syncer_gone(str(exc))  # syncs what waits, in the old segment: still current here
        old, self._segment = self._segment, new
        if old is not None:
            self._retire(old)
        return True

    def _retire(self, seg: _Segment) -> None:
        """Nothing more is appended to ``seg``: deleted now if all its rows are stored, else by the
        writer's last release (or, if the server dies first, by the next start's replay)."""
        with self._lock:
            seg.closed = True
            done = seg.pending == 0
        if done:
            self._delete(seg)

    # -- the writer side ---------------------------------------------------------------------------

    def _releaser(self, seg: _Segment) -> Callable[[Sequence[Any]], None]:
        def stored(rejected: Sequence[Any] = ()) -> None:
            """The writer stored the item's rows, except ``rejected`` (refused by the store)."""
            if rejected and not self._set_aside(seg, rejected):
                return  # kept in the segment: the next start tries again
            with self._lock:
                seg.pending -= 1
                done = seg.closed and seg.pending == 0
            if done:
                self._delete(seg)
        return stored

    def _set_aside(self, seg: _Segment, rows: Sequence[Any]) -> bool:
        """Append rows the store refused to ``<segment>.rejected`` (fsync'd) before the segment may
        go; False if that fails (then the segment stays)."""
        path = seg.path.with_suffix(".rejected")
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                _write_all(fd, encode_group(list(rows)))
                os.fdatasync(fd)
            finally:
                os.close(fd)
            _fsync_dir(self.directory)
        except OSError as exc:
            log.error("prediction spool: %d rows of %s the store refused cannot be set aside (%s); the segment is "
                      "kept and replayed at the next start", len(rows), seg.path.name, exc)
            return False
        self.stats.rejected_rows += len(rows)
        log.error("prediction spool: the store refused %d acknowledged rows of %s (see the errors above); they are "
                  "kept in %s: fix the cause, then rename it to end in .spool and restart to store them",
                  len(rows), seg.path.name, path)
        return True

    def _delete(self, seg: _Segment) -> None:
        with self._lock:  # once: the loop may be syncing it (fallback) while the writer releases it
            if seg.deleted:
                return
            seg.deleted = True
            try:
                seg.path.unlink(missing_ok=True)
            finally:
                os.close(seg.fd)
        self.stats.segments_deleted += 1

    def status(self) -> dict[str, Any]:
        s = self.stats
        return {"directory": str(self.directory),
                # the pid of the fsync process; None: the event loop syncs itself (it could not start or died)
                "fsync_process": None if self._syncer is None else self._syncer.pid,
                "fsyncs": s.groups, "requests": s.requests,
                "requests_per_fsync": round(s.requests / s.groups, 2) if s.groups else None, "bytes": s.bytes,
                "failures": s.failures, "last_error": s.last_error, "replayed_segments": s.replayed_segments,
                "replayed_groups": s.replayed_groups, "torn_bytes": s.torn_bytes,
                "segments_deleted": s.segments_deleted, "rejected_rows": s.rejected_rows}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: Path) -> None:
    """A new file's directory entry must be durable too, or a crash can lose the whole file."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = ["SEGMENT_BYTES", "PredictionSpool", "SpoolStats", "decode_frames", "encode_group", "encoded_model_name",
           "segment_model", "spool_directory"]
