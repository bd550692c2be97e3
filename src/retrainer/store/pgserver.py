"""A throwaway local PostgreSQL server, for the test suite and the benchmark.

initdb and pg_ctl refuse to run as root (CI containers run as root), so as root they run as
the ``postgres`` system user in a directory handed over to it. The server listens on
127.0.0.1 on a free port with its socket inside the temporary directory, so it never touches
a system installation.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def pg_bindir() -> Path | None:
    """Directory holding initdb/pg_ctl (``pg_config --bindir`` first, then PATH), or None."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
            if (Path(out) / "initdb").exists() and (Path(out) / "pg_ctl").exists():
                return Path(out)
        except (subprocess.CalledProcessError, OSError):
            pass
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TemporaryPostgres:
    """``with TemporaryPostgres() as pg: pg.url("postgres")`` — stopped and deleted on exit.

    ``durable=False`` turns fsync off: fine for tests, wrong for figures you publish.
    """

    user = "postgres"
    host = "127.0.0.1"

    def __init__(self, *, durable: bool = False, bindir: Path | None = None) -> None:
        found = bindir or pg_bindir()
        if found is None:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql")
        self.bindir = found
        self.durable = durable
        self.port = 0
        self._tmp: Path | None = None

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            log = self._tmp / "server.log" if self._tmp else None
            tail = log.read_text()[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}\n{tail}")

    def start(self) -> TemporaryPostgres:
        self._tmp = Path(tempfile.mkdtemp(prefix="retrainer-pg-"))
        data, sock = self._tmp / "data", self._tmp / "sock"
        sock.mkdir()
        if os.geteuid() == 0:
            import pwd

            pw = pwd.getpwnam("postgres")
            for p in (self._tmp, sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", str(data), "-U", self.user, "-A", "trust", "-E", "UTF8", "--no-sync")
        self.port = _free_port()
        opts = f"-h {self.host} -p {self.port} -k {sock} -c max_connections=200"
        if not self.durable:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(self._tmp / "server.log"), "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        if self._tmp is None:
            return
        try:
            if (self._tmp / "data" / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(self._tmp / "data"), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def __enter__(self) -> TemporaryPostgres:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
