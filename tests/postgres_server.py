"""A real PostgreSQL server for tests: Debian's binaries (``postgresql`` package, installed by
scripts/install), a fresh cluster in a temporary folder, listening only on a Unix socket there.

PostgreSQL refuses to run as root, so when the tests run as root the cluster belongs to
``nobody``. Each test gets its own database from :meth:`PostgresServer.new_database`.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["PostgresServer", "postgres_bin", "running_postgres"]

START_TIMEOUT_S = 60.0


def postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding initdb, if any."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[4]) if Path(p).parts[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


class PostgresServer:
    """A running cluster; ``socket_dir`` is where its socket lies."""

    def __init__(self, bin_dir: Path, folder: Path, user: str | None) -> None:
        self.bin_dir, self.folder, self.user = bin_dir, folder, user
        self.socket_dir = folder
        self.role = user or os.environ.get("USER") or "postgres"
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.role}@/{database}?host={self.socket_dir}"

    def new_database(self) -> str:
        """A new empty database's SQLAlchemy URL."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(host=str(self.socket_dir), dbname="postgres", user=self.role,
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.bin_dir / args[0]), *args[1:]], user=self.user,
                              capture_output=True, text=True, check=False, cwd=self.folder)

    def start(self) -> None:
        done = self._run("initdb", "-D", str(self.folder / "data"), "-U", self.role,
                         "--auth=trust", "-E", "UTF8", "--no-sync")
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr}")
        options = f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off"
        done = self._run("pg_ctl", "-D", str(self.folder / "data"), "-o", options,
                         "-l", str(self.folder / "log"), "-w", "-t", str(int(START_TIMEOUT_S)),
                         "start")
        if done.returncode:
            log = (self.folder / "log").read_text(errors="replace")
            raise RuntimeError(f"pg_ctl start failed: {done.stderr}{log}")
        deadline = time.monotonic() + START_TIMEOUT_S
        while not list(self.socket_dir.glob(".s.PGSQL.*")):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL's socket did not appear")
            time.sleep(0.05)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh cluster for the duration of the block, removed afterwards."""
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: run scripts/install (Debian's "
                           "postgresql package)")
    user = "nobody" if os.geteuid() == 0 else None
    folder = Path(tempfile.mkdtemp(prefix="tt-pg-"))
    if user:
        shutil.chown(folder, user=user)
    server = PostgresServer(bin_dir, folder, user)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
