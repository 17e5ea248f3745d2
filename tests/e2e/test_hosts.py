"""Many hosts: workers on "hosts" of their own (network and UTS namespaces: their own hostname,
no network at all) share nothing but the broker — Redis on a Unix socket in a shared folder —
and the data root. A sharded detect job runs across them; one host is killed mid-job; the job
completes with every image once.

Where namespaces cannot be created (no root, no ``unshare``), the test says so and runs the
workers as plain processes instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Workers, wait_for_job, wait_until
from tests.detect.conftest import tiny_checkpoint  # noqa: F401 (a fixture)
from tests.e2e.test_worker_loss import (  # noqa: F401 (a fixture)
    TIMEOUT_S,
    assert_every_image_once,
    loss_env,
    submit_detect,
    tiny_weights,
)
from tigertrap.core.jobs import job_status
from tigertrap.core.redis_server import RedisServer, start_redis

HOSTS = ("host-a", "host-b")


def namespaces_work() -> str | None:
    """None when ``unshare --net --uts`` works here, else why not."""
    if shutil.which("unshare") is None:
        return "no unshare command"
    probe = subprocess.run(["unshare", "--net", "--uts", "hostname", "probe"],
                           capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else probe.stderr.strip() or "unshare failed"


@pytest.fixture
def socket_redis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RedisServer]:
    """A Redis reachable through a Unix socket in a short shared folder (socket paths are
    limited to about 100 bytes); REDIS_URL is its ``redis+socket://`` URL."""
    folder = Path(tempfile.mkdtemp(prefix="tt-broker-", dir="/tmp"))
    server = start_redis(tmp_path / "redis", unix_socket=folder / "redis.sock")
    monkeypatch.setenv("REDIS_URL", server.socket_url)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def start_host(workers: Workers, name: str, isolated: bool) -> subprocess.Popen[bytes]:
    """A detect worker on a "host": its own network (none) and hostname when ``isolated``."""
    command = [sys.executable, "-m", "tigertrap.core", "worker", "detect", "--loglevel", "INFO"]
    if isolated:
        command = ["unshare", "--net", "--uts", "--", "sh", "-c",
                   f'hostname {name} && exec "$0" "$@"', *command]
    log = open(workers.log_dir / f"worker-{name}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(command, env=workers.env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    workers.processes.append(process)
    return process


def test_a_job_runs_across_hosts_that_share_only_the_broker_socket_and_survives_losing_one(
        socket_redis: RedisServer, data_root: Path, fixtures_dir: Path,
        tiny_weights: str,  # noqa: F811
        tmp_path: Path):
    why_not = namespaces_work()
    if why_not:
        warnings.warn(f"network/UTS namespaces unavailable ({why_not}): the hosts run as "
                      "plain processes", stacklevel=1)
    isolated = why_not is None
    workers = Workers(loss_env(socket_redis.socket_url, data_root), tmp_path)
    try:
        hosts = {name: start_host(workers, name, isolated) for name in HOSTS}
        node = {name: f"detect.{process.pid}@{name if isolated else os.uname().nodename}"
                for name, process in hosts.items()}
        job, images = submit_detect(data_root, fixtures_dir, tiny_weights, shard_size=30)

        def both_busy() -> bool:
            shards = job_status(job).stage_progress[0].shards
            return {s.worker for s in shards if s.status == "running"} == set(node.values())

        wait_until(both_busy, TIMEOUT_S, "a shard running on each host")
        if isolated:  # really in a network namespace of its own (no interface but a down lo)
            ours = os.readlink("/proc/self/ns/net")
            assert all(os.readlink(f"/proc/{p.pid}/ns/net") != ours for p in hosts.values())
        workers.kill_hard(hosts["host-a"])  # the whole host goes: every process of it
        status = wait_for_job(job, workers, TIMEOUT_S)
    finally:
        workers.stop_all()

    assert_every_image_once(status, data_root, images, workers)
    shards = status.stage_progress[0].shards
    assert {s.worker for s in shards} <= set(node.values())
    assert any(s.worker == node["host-b"] and s.attempts == 2 for s in shards)  # taken over
