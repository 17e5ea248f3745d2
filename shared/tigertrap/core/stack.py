"""The local stack without Docker: Redis, the HTTP API and one worker per installed stage, kept
alive.

The same processes ``docker compose up`` runs, started as child processes of one command that
prints where everything is, restarts what dies and stops all of it on Ctrl-C (or SIGTERM).

Restart rules (what :class:`Supervisor` does):

- A worker or the API that exits for any reason (crash, SIGKILL, out of memory, even exit code
  0) while the stack runs is started again after a delay that doubles with each exit in a row:
  1 s, 2 s, 4 s, ... capped at 30 s (:data:`PROCESS_POLICY`). Whatever the dead process left
  behind in its process group (a worker's pool children) is killed before the restart.
- A process that stayed up 60 s or more before it died counts as healed: its next delay starts
  again at 1 s.
- A process that exits 8 times in a row without ever staying up 60 s is not going to heal (a bad
  setting, a missing dependency): after its 8th exit (about 1.5 minutes of retries) the stack
  stops, naming it and how it last ended; its own output above says why. Exit code 1.
- Redis that dies is restarted on the same port and data folder, so every client reconnects to
  the same URL and the append-only file brings the queue back; after 1 s, then 2 s. If it cannot
  be started, or dies 3 times in a row within 60 s of starting (:data:`REDIS_POLICY`), the
  stack stops. Exit code 1.
- Ctrl-C or SIGTERM stops everything: SIGTERM to the API and the workers (Celery finishes or
  requeues its task), SIGKILL after 20 s, then Redis. Exit code 0.

Every death and restart is logged on stderr, one line each: which process and pid, its exit code
or signal, how long it was up, and the delay before the next start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.redis_server import RedisServer, start_redis

__all__ = [
    "PROCESS_POLICY",
    "REDIS_POLICY",
    "RestartPolicy",
    "Supervised",
    "Supervisor",
    "describe_exit",
    "process_starter",
    "run_stack",
]

STOP_TIMEOUT_S = 20.0
#: How often the stack looks at its processes.
CHECK_INTERVAL_S = 0.5


@dataclass(frozen=True)
class RestartPolicy:
    """When to start a dead process again, and when to stop trying."""

    #: Delay before the first restart; doubled for each further exit in a row.
    first_delay_s: float = 1.0
    #: The delay never grows beyond this.
    max_delay_s: float = 30.0
    #: A process up this long before it died counts as healed: the count starts again.
    stable_after_s: float = 60.0
    #: Exits in a row (none of them after ``stable_after_s`` up) that stop the stack.
    give_up_after: int = 8

    def delay_s(self, exits_in_a_row: int) -> float:
        """The delay before the restart that follows the ``exits_in_a_row``-th exit (1-based)."""
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(0, exits_in_a_row - 1))


#: Workers and the API.
PROCESS_POLICY = RestartPolicy()
#: Redis: restarted sooner, given up sooner; without it nothing works.
REDIS_POLICY = RestartPolicy(first_delay_s=1.0, max_delay_s=2.0, give_up_after=3)


def describe_exit(returncode: int) -> str:
    """``killed by SIGKILL`` or ``exited with code 1``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} stack: {message}", file=sys.stderr, flush=True)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    """Send ``sig`` to the process group the process leads (each stack child leads its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


@dataclass
class Supervised:
    """One process the stack keeps running: ``start`` starts it in a process group of its own
    and returns it (or raises if it cannot)."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    policy: RestartPolicy = PROCESS_POLICY
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    exits_in_a_row: int = 0
    restart_at: float | None = None
    last_exit: str = ""
    starts: int = field(default=0, repr=False)


class Supervisor:
    """Starts :class:`Supervised` processes and, on each :meth:`check`, restarts the dead ones
    by their :class:`RestartPolicy`. Not thread-safe: one thread calls it."""

    def __init__(self, log: Callable[[str], None] = _log,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.clock = clock
        self.processes: list[Supervised] = []

    def add(self, supervised: Supervised) -> None:
        """Watch ``supervised`` from now on, starting it unless it already runs. The first one
        added (Redis) is stopped after all the others."""
        self.processes.append(supervised)
        if supervised.process is None:
            self._start(supervised)
        elif supervised.starts == 0:
            supervised.starts = 1
            self.log(f"{supervised.name} started (pid {supervised.process.pid})")

    def pid(self, name: str) -> int | None:
        """The pid of the running process called ``name``; None while it is down."""
        for supervised in self.processes:
            if supervised.name == name and supervised.process is not None:
                return supervised.process.pid
        return None

    def check(self) -> str | None:
        """Note every process that died and restart those whose delay has passed.

        Returns:
            None while the stack can go on; otherwise why it must stop (a process that is not
            healing), as a sentence naming the process.
        """
        now = self.clock()
        for supervised in self.processes:
            process = supervised.process
            if process is not None and process.poll() is not None:
                verdict = self._died(supervised, describe_exit(process.returncode), now)
                if verdict:
                    return verdict
            if supervised.restart_at is not None and now >= supervised.restart_at:
                verdict = self._start(supervised)
                if verdict:
                    return verdict
        return None

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every process group but the first (Redis) and wait, SIGKILL after
        ``timeout_s``; then the same for the first."""
        for supervised in self.processes:
            supervised.restart_at = None
        if self.processes:
            self._terminate(self.processes[1:], timeout_s)
            self._terminate(self.processes[:1], timeout_s)

    def _terminate(self, group: Sequence[Supervised], timeout_s: float) -> None:
        running = [s.process for s in group if s.process is not None]
        for process in running:
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        for process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"pid {process.pid} did not stop within {timeout_s:.0f} s; killing it")
            _signal_group(process, signal.SIGKILL)  # and whatever it left in its group
            process.wait()

    def _start(self, supervised: Supervised) -> str | None:
        supervised.restart_at = None
        again = supervised.starts > 0
        supervised.starts += 1
        try:
            supervised.process = supervised.start()
        except Exception as error:  # any failed start is retried by the policy
            supervised.process = None
            return self._died(supervised, f"could not start: {error}", self.clock())
        supervised.started_at = self.clock()
        self.log(f"{supervised.name} {'restarted' if again else 'started'} "
                 f"(pid {supervised.process.pid})")
        return None

    def _died(self, supervised: Supervised, how: str, now: float) -> str | None:
        process = supervised.process
        up_s = now - supervised.started_at if process is not None else 0.0
        if process is not None:
            _signal_group(process, signal.SIGKILL)  # pool children it may have left behind
        supervised.process = None
        if up_s >= supervised.policy.stable_after_s:
            supervised.exits_in_a_row = 0
        supervised.exits_in_a_row += 1
        supervised.last_exit = how
        who = f"{supervised.name} (pid {process.pid})" if process else supervised.name
        if supervised.exits_in_a_row >= supervised.policy.give_up_after:
            self.log(f"{who} {how} after {up_s:.1f} s up")
            return self._give_up(supervised)
        delay = supervised.policy.delay_s(supervised.exits_in_a_row)
        supervised.restart_at = now + delay
        self.log(f"{who} {how} after {up_s:.1f} s up; restart in {delay:g} s "
                 f"(exit {supervised.exits_in_a_row} in a row; gives up at "
                 f"{supervised.policy.give_up_after})")
        return None

    def _give_up(self, supervised: Supervised) -> str:
        supervised.restart_at = None
        stable = supervised.policy.stable_after_s
        return (f"{supervised.name} ended {supervised.exits_in_a_row} times in a row without "
                f"staying up {stable:g} s (last: {supervised.last_exit}); it is not healing, "
                f"so the stack stops. Its output above says why.")


def _tigertrap_command() -> list[str]:
    return [sys.executable, "-m", "tigertrap.core"]


def process_starter(command: Sequence[str], env: dict[str, str] | None = None,
                    ) -> Callable[[], subprocess.Popen[bytes]]:
    """A :attr:`Supervised.start` that runs ``command`` in a process group of its own: a Ctrl-C
    meant for the stack does not reach it half-way through, and what it leaves behind when it
    dies can be killed with it."""
    return lambda: subprocess.Popen(list(command), env=env, process_group=0)


def _choose_stages(stages: Sequence[str] | None, installed: Sequence[str]) -> list[str]:
    if stages is None:
        return sorted(installed)
    unknown = sorted(set(stages) - set(installed))
    if unknown:
        raise ValueError(f"--stage {', '.join(unknown)}: no such stage is installed here "
                         f"(installed: {', '.join(sorted(installed)) or 'none'})")
    return list(dict.fromkeys(stages))


def run_stack(*, host: str = "127.0.0.1", port: int = 8000, redis_port: int | None = None,
              stages: Sequence[str] | None = None, api: bool = True) -> int:
    """Run the stack until Ctrl-C or SIGTERM (0), or until it cannot heal (1); see the module
    docstring for the restart rules.

    ``stages`` chooses the workers (default: every installed stage); ``api`` False leaves the
    HTTP API out.

    Raises:
        ConfigError: a bad setting.
        ValueError: an unknown stage in ``stages``.
        RedisDataTooNew: Redis's data folder was written by a newer Redis than the one found.
        RuntimeError: Redis did not start.
    """
    from tigertrap.core.cli import command_entry_points, task_entry_points

    settings = load_settings(CoreSettings)
    workers = _choose_stages(stages, list(task_entry_points()))
    data_root = Path(settings.tigertrap_data).resolve()
    data_root.mkdir(parents=True, exist_ok=True)
    redis = start_redis(data_root / "redis", port=redis_port, own_process_group=True)
    env = {**os.environ, "REDIS_URL": redis.url, "TIGERTRAP_DATA": str(data_root)}
    supervisor = Supervisor()
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        supervisor.add(Supervised("redis", _restart_redis(redis), REDIS_POLICY,
                                  process=redis.process, started_at=time.monotonic()))
        for stage in workers:
            command = [*_tigertrap_command(), "worker", stage]
            supervisor.add(Supervised(f"worker {stage}", process_starter(command, env)))
        with_api = api and "serve" in command_entry_points()
        if with_api:
            command = [*_tigertrap_command(), "serve", "--host", host, "--port", str(port)]
            supervisor.add(Supervised("api", process_starter(command, env)))
            print(f"API:      http://{host}:{port}/   (OpenAPI: http://{host}:{port}/docs)")
        print(f"Redis:    {redis.url}   ({redis.binary} {redis.version})")
        print(f"Data:     {data_root}")
        print(f"Workers:  {', '.join(workers) or 'none'}")
        print("A process that dies is restarted (rules: docs/ARCHITECTURE.md). "
              "Press Ctrl-C to stop.", flush=True)
        while not stop_requested.wait(CHECK_INTERVAL_S):
            verdict = supervisor.check()
            if verdict:
                _log(verdict)
                return 1
        return 0
    finally:
        supervisor.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        print("stack stopped", flush=True)


def _restart_redis(first: RedisServer) -> Callable[[], subprocess.Popen[bytes]]:
    """Starts Redis again where it was: same binary, port and data folder."""
    return lambda: start_redis(first.data_dir, port=first.port, binary=first.binary,
                               own_process_group=True).process
