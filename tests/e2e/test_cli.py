"""The `tigertrap` command and the local stack, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.e2e.conftest import wait_until
from tigertrap.core.cli import command_entry_points, task_entry_points
from tigertrap.core.queue import STAGES
from tigertrap.core.redis_server import free_port

TIGERTRAP = [sys.executable, "-m", "tigertrap.core"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TIGERTRAP, *args], capture_output=True, text=True, check=False)


def test_help_lists_every_installed_stage_command():
    result = run("--help")
    assert result.returncode == 0, result.stderr
    for name in ("jobs", "worker", "stack", *command_entry_points()):
        assert name in result.stdout
    assert "unavailable" not in result.stderr


def test_jobs_help_lists_its_subcommands():
    result = run("jobs", "--help")
    assert result.returncode == 0
    for name in ("submit", "status", "cancel", "list"):
        assert name in result.stdout


def test_every_stage_installs_a_worker_task_module():
    assert set(task_entry_points()) == set(STAGES)


def test_worker_for_an_unknown_stage_fails_naming_the_stages():
    result = run("worker", "sniff")
    assert result.returncode != 0
    assert "unknown stage 'sniff'" in result.stderr and "download, detect" in result.stderr


def test_submit_with_a_malformed_param_says_how_to_write_it(redis_url):
    result = run("jobs", "submit", "snip", "-p", "LOWER_CONF=0.1")
    assert result.returncode != 0 and "STAGE.KEY=VALUE" in result.stderr


@pytest.mark.skipif("serve" not in command_entry_points(), reason="classify not installed")
def test_local_stack_serves_the_api_and_stops_cleanly_on_ctrl_c(tmp_path):
    port = free_port()
    env = {**os.environ, "TIGERTRAP_DATA": str(tmp_path / "data")}
    env.pop("REDIS_URL", None)
    stack = subprocess.Popen([*TIGERTRAP, "stack", "--port", str(port)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        def healthy() -> bool:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            except httpx.HTTPError:
                return False
            return response.status_code == 200 and response.json().get("redis") is True
        wait_until(healthy, 90, "the stack's API to report Redis reachable")

        def every_stage_live() -> bool:  # one worker per installed stage, each heartbeating
            body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
            return body["redis"] and set(body["stages_without_workers"]) <= missing
        missing = set(STAGES) - set(task_entry_points())
        wait_until(every_stage_live, 180, "a live worker on every installed stage")
        os.killpg(stack.pid, signal.SIGINT)
        output, _ = stack.communicate(timeout=60)
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
    assert stack.returncode == 0, output
    assert f"http://127.0.0.1:{port}/" in output and "stack stopped" in output
    leftover = subprocess.run(["pgrep", "-s", str(stack.pid)], capture_output=True, text=True,
                              check=False)
    assert leftover.stdout.strip() == "", "every stack process has exited"
