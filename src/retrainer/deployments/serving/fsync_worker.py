"""The prediction spool's fsync process: ``fdatasync`` off the serving process.

Started by :func:`spawn` (``python -I -S fsync_worker.py <socket fd> <file fd>``) for
:class:`~retrainer.deployments.serving.spool.PredictionSpool` (standard library only, so it starts in
milliseconds and never imports the user's model). Why a process and not a thread: a thread coming
back from ``fdatasync`` must win the GIL from the busy event loop before it can wake anyone, which
cost more than the blocking call it replaced; a process answers on a socket the event loop
already watches, and the loop goes on serving while the disk flushes.

Protocol, one message per datagram over a ``SOCK_SEQPACKET`` pair:

* server -> worker: ``b"s"`` — make everything written to the file so far durable;
  ``b"n"`` carrying one file descriptor — the same for the current file, then switch to that one
  (the spool rotated to a new segment).
* worker -> server: ``<II`` (count, errno) — the oldest ``count`` outstanding ``s`` requests are
  durable (errno 0) or failed with ``errno``. Requests that arrive while a flush runs share the
  next one (a group commit without a timer).

The worker exits when the server closes its end (a stop, or the server's death: ``kill -9``
included), so it never outlives the spool it serves.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable

REPLY = struct.Struct("<II")
SYNC, NEXT_FILE = b"s", b"n"


def spawn(fd: int) -> tuple[socket.socket, subprocess.Popen[bytes]]:
    """Start a worker for the file ``fd``: our end of its socket, and the process."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", __file__, str(theirs.fileno()), str(fd)],
                                pass_fds=(theirs.fileno(), fd), stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    return ours, proc


def _flush(fd: int, fdatasync: Callable[[int], None]) -> int:
    try:
        fdatasync(fd)
    except OSError as exc:
        return exc.errno or 5  # EIO when the OS gave no number
    return 0


def serve(sock: socket.socket, fd: int, fdatasync: Callable[[int], None] = os.fdatasync) -> None:
    """Answer sync requests on ``sock`` for ``fd`` until the other end closes."""
    sock.setblocking(False)
    parent = os.getppid()
    while True:
        if not select.select([sock], [], [], 1.0)[0]:
            if os.getppid() != parent:
                return  # belt and braces: the server is gone even if the socket did not say so
            continue
        batch = []
        while True:  # everything already queued shares one flush
            try:
                batch.append(socket.recv_fds(sock, 16, 1))
            except BlockingIOError:
                break
            if not batch[-1][0]:
                break  # the end: it stays readable
        pending = 0
        for msg, fds, _flags, _addr in batch:
            if not msg:
                return  # the server closed its end (or died)
            if msg == SYNC:
                pending += 1
            elif msg == NEXT_FILE and fds:
                if pending:
                    _reply(sock, pending, _flush(fd, fdatasync))
                    pending = 0
                os.close(fd)
                fd = fds[0]
        if pending:
            _reply(sock, pending, _flush(fd, fdatasync))


def _reply(sock: socket.socket, count: int, err: int) -> None:
    while True:
        try:
            sock.send(REPLY.pack(count, err))
            return
        except BlockingIOError:  # the server is behind reading answers: wait for room
            select.select([], [sock], [])


def main(argv: list[str]) -> None:
    # Ctrl-C, or a service manager's SIGTERM to the whole group, stops the server, which drains
    # its requests (they still need us) and then closes the socket: that is when we end.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sock = socket.socket(fileno=int(argv[1]))
    try:
        serve(sock, int(argv[2]))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server is gone: nobody is waiting for an answer


if __name__ == "__main__":
    main(sys.argv)
