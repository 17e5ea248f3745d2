"""`tigertrap stack` heals: a killed worker, API or Redis comes back; only SIGTERM stops it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.e2e.conftest import wait_until
from tigertrap.core.cli import command_entry_points
from tigertrap.core.jobs import StageRequest, job_status, submit_job
from tigertrap.core.queue import celery_app
from tigertrap.core.redis_server import VERSION_MARKER, free_port

pytestmark = pytest.mark.skipif("serve" not in command_entry_points(),
                                reason="classify (the API) not installed")

TIGERTRAP = [sys.executable, "-m", "tigertrap.core"]
#: The one worker these stacks run; a job for another stage stays queued.
STAGE = "snip"
IDLE_STAGE = "train"


class RunningStack:
    """A `tigertrap stack` subprocess in a session of its own, its output collected as it
    comes."""

    def __init__(self, data_root: Path, *args: str) -> None:
        self.port = free_port()
        self.redis_port = free_port()
        self.data_root = data_root
        env = {**os.environ, "TIGERTRAP_DATA": str(data_root)}
        for key in ("REDIS_URL", "PYTEST_CURRENT_TEST"):
            env.pop(key, None)
        self.process = subprocess.Popen(
            [*TIGERTRAP, "stack", "--port", str(self.port), "--redis-port",
             str(self.redis_port), "--stage", STAGE, *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def pid(self, name: str) -> int | None:
        """The pid of ``name``'s latest start, from the stack's log."""
        pattern = re.compile(rf"stack: {re.escape(name)} (?:re)?started \(pid (\d+)\)")
        pids = [int(m[1]) for line in list(self.lines) if (m := pattern.search(line))]
        return pids[-1] if pids else None

    def wait_for_pid(self, name: str, other_than: int | None = None) -> int:
        def started() -> int | None:
            pid = self.pid(name)
            return pid if pid is not None and pid != other_than else None
        return int(wait_until(started, 60, f"{name} to start ({self.output[-2000:]})"))

    def api_answers(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/openapi.json", timeout=2
                             ).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_answers(self, pid: int) -> bool:
        """The worker process ``pid`` answers a Celery ping through Redis."""
        try:
            replies = celery_app(self.redis_url).control.ping(timeout=1.0)
        except (OSError, redis.RedisError):
            return False
        return any(hostname.startswith(f"{STAGE}.{pid}@") for reply in replies
                   for hostname in reply)

    def wait_until_ready(self) -> None:
        wait_until(self.api_answers, 90, f"the stack's API ({self.output[-2000:]})")
        worker = self.wait_for_pid(f"worker {STAGE}")
        wait_until(lambda: self.worker_answers(worker), 60, f"the {STAGE} worker to answer")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code

    def leftover_processes(self) -> str:
        return subprocess.run(["pgrep", "-a", "-s", str(self.process.pid)], capture_output=True,
                              text=True, check=False).stdout.strip()

    def kill_everything(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
        for line in self.leftover_processes().splitlines():
            os.kill(int(line.split()[0]), signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[RunningStack]:
    """A running stack (Redis, the API, one snip worker) on free ports, data in tmp_path."""
    running = RunningStack(tmp_path / "data")
    try:
        running.wait_until_ready()
        yield running
    finally:
        running.kill_everything()


def queue_idle_job(stack: RunningStack) -> str:
    """A job for a stage without a worker here: it stays queued in Redis."""
    return submit_job([StageRequest(stage=IDLE_STAGE, params={})], url=stack.redis_url)


def test_a_killed_worker_is_restarted_while_the_api_and_redis_stay_up(stack):
    worker = stack.wait_for_pid(f"worker {STAGE}")
    api, redis_pid = stack.pid("api"), stack.pid("redis")
    os.kill(worker, signal.SIGKILL)
    replacement = stack.wait_for_pid(f"worker {STAGE}", other_than=worker)
    assert f"worker {STAGE} (pid {worker}) killed by SIGKILL" in stack.output
    assert re.search(rf"pid {worker}\) killed by SIGKILL .*restart in 1 s", stack.output)
    wait_until(lambda: stack.worker_answers(replacement), 60, "the new worker to answer")
    assert stack.pid("api") == api and stack.pid("redis") == redis_pid
    assert alive(api) and alive(redis_pid) and stack.api_answers()
    assert stack.process.poll() is None


def test_a_killed_api_is_restarted_and_answers(stack):
    api = stack.wait_for_pid("api")
    os.kill(api, signal.SIGKILL)
    replacement = stack.wait_for_pid("api", other_than=api)
    assert f"api (pid {api}) killed by SIGKILL" in stack.output
    wait_until(stack.api_answers, 60, "the restarted API to answer")
    assert alive(replacement) and stack.process.poll() is None


def test_a_killed_redis_is_restarted_with_the_job_queued_before(stack):
    job_id = queue_idle_job(stack)
    redis_pid = stack.wait_for_pid("redis")
    worker = stack.pid(f"worker {STAGE}")
    os.kill(redis_pid, signal.SIGKILL)
    stack.wait_for_pid("redis", other_than=redis_pid)
    assert f"redis (pid {redis_pid}) killed by SIGKILL" in stack.output
    assert job_status(job_id, url=stack.redis_url).status == "queued"
    assert redis.Redis.from_url(stack.redis_url).llen(IDLE_STAGE) == 1
    wait_until(lambda: stack.worker_answers(worker), 60, "the worker to reconnect to Redis")
    assert stack.api_answers()


def test_sigterm_stops_every_process_of_the_stack(stack):
    assert stack.leftover_processes().count("\n") >= 3, "stack, redis, worker, api"
    assert stack.stop(signal.SIGTERM) == 0
    assert "stack stopped" in stack.output
    assert stack.leftover_processes() == ""
    assert "restarted (pid" not in stack.output, "nothing restarted while stopping"


def test_a_job_queued_before_a_stack_restart_is_still_queued(stack):
    job_id = queue_idle_job(stack)
    assert stack.stop(signal.SIGTERM) == 0
    again = RunningStack(stack.data_root, "--no-api")
    try:
        again.wait_for_pid("redis")
        wait_until(lambda: again.output.count("started (pid") >= 2, 60, "the worker to start")
        assert job_status(job_id, url=again.redis_url).status == "queued"
    finally:
        again.kill_everything()


def test_a_stack_on_data_from_a_newer_redis_refuses_to_start(tmp_path):
    folder = tmp_path / "data" / "redis"
    folder.mkdir(parents=True)
    (folder / VERSION_MARKER).write_text("99.0.0 /opt/redis/bin/redis-server\n")
    refused = RunningStack(tmp_path / "data")
    code = refused.process.wait(timeout=60)
    refused._reader.join(timeout=10)
    assert code == 2
    assert f"the Redis data in {folder} was written by redis-server 99.0.0" in refused.output
    assert refused.leftover_processes() == ""
