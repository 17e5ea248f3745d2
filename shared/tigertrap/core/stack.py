"""The local stack without Docker: Redis, the HTTP API and one worker per installed stage.

The same processes ``docker compose up`` runs, started as child processes of one command that
prints where everything is and stops all of it on Ctrl-C (or SIGTERM).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.redis_server import start_redis

__all__ = ["run_stack"]

STOP_TIMEOUT_S = 20


def _tigertrap_command() -> list[str]:
    return [sys.executable, "-m", "tigertrap.core"]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_stack(*, host: str = "127.0.0.1", port: int = 8000,
              redis_port: int | None = None) -> int:
    """Run the stack until interrupted; return the exit code (non-zero if a process died)."""
    from tigertrap.core.cli import command_entry_points, task_entry_points

    settings = load_settings(CoreSettings)
    data_root = Path(settings.tigertrap_data).resolve()
    data_root.mkdir(parents=True, exist_ok=True)
    redis = start_redis(data_root / "redis", port=redis_port)
    env = {**os.environ, "REDIS_URL": redis.url, "TIGERTRAP_DATA": str(data_root)}
    processes: list[subprocess.Popen[bytes]] = []
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for stage in sorted(task_entry_points()):
            processes.append(subprocess.Popen([*_tigertrap_command(), "worker", stage], env=env))
        if "serve" in command_entry_points():
            processes.append(subprocess.Popen(
                [*_tigertrap_command(), "serve", "--host", host, "--port", str(port)], env=env))
            print(f"API:      http://{host}:{port}/   (OpenAPI: http://{host}:{port}/docs)")
        print(f"Redis:    {redis.url}")
        print(f"Data:     {data_root}")
        print(f"Workers:  {', '.join(sorted(task_entry_points())) or 'none installed'}")
        print("Press Ctrl-C to stop.", flush=True)
        while not stop_requested.wait(1.0):
            if any(process.poll() is not None for process in processes):
                print("a stack process exited; stopping the stack", file=sys.stderr)
                return 1
        return 0
    finally:
        _stop(processes)
        redis.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("stack stopped", flush=True)
