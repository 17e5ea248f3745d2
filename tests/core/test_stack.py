"""The stack's supervisor, on small real processes: restarts with backoff, gives up, stops all."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tigertrap.core.stack import (
    PROCESS_POLICY,
    RestartPolicy,
    Supervised,
    Supervisor,
    describe_exit,
    process_starter,
)

#: Fast enough for a test, slow enough that a crash loop would show as many more exits.
QUICK = RestartPolicy(first_delay_s=0.05, max_delay_s=0.2, stable_after_s=30, give_up_after=5)


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


class Recorder:
    """A supervisor that keeps its log lines and is checked until a condition holds."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.supervisor = Supervisor(log=self.lines.append)
        self.verdict: str | None = None

    def run_until(self, condition, timeout: float, what: str) -> None:
        def step() -> bool:
            self.verdict = self.verdict or self.supervisor.check()
            return bool(condition())
        wait_until(step, timeout, what)

    def matching(self, text: str) -> list[str]:
        return [line for line in self.lines if text in line]


@pytest.fixture
def recorder():
    recorder = Recorder()
    try:
        yield recorder
    finally:
        recorder.supervisor.stop(timeout_s=5)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_delay_doubles_up_to_its_cap():
    assert [PROCESS_POLICY.delay_s(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 30, 30, 30]


def test_exits_are_described_by_code_or_signal():
    assert describe_exit(3) == "exited with code 3"
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"


def test_a_process_that_crashes_at_once_backs_off_and_then_stops_the_stack(recorder):
    recorder.supervisor.add(Supervised("worker crasher", process_starter(
        python("import sys; sys.exit(3)")), QUICK))
    recorder.run_until(lambda: recorder.verdict, 30, "the supervisor to give up")
    delays = [line.split("restart in ")[1].split(" s")[0]
              for line in recorder.matching("restart in")]
    assert delays == ["0.05", "0.1", "0.2", "0.2"]
    assert len(recorder.matching("exited with code 3")) == 5
    assert "worker crasher ended 5 times in a row" in recorder.verdict
    assert "exited with code 3" in recorder.verdict and "not healing" in recorder.verdict
    started = recorder.matching("started") + recorder.matching("restarted")
    assert len({line.split("pid ")[1] for line in started}) == 5, "a new process each time"


def test_a_process_that_stayed_up_starts_its_backoff_again(recorder):
    healing = RestartPolicy(first_delay_s=0.05, max_delay_s=1, stable_after_s=0.3,
                            give_up_after=2)
    recorder.supervisor.add(Supervised("api", process_starter(
        python("import sys, time; time.sleep(0.5); sys.exit(1)")), healing))
    recorder.run_until(lambda: len(recorder.matching("restart in")) >= 3, 30,
                       "three exits of a process that stays up 0.5 s")
    assert recorder.verdict is None, "never given up: each run outlived stable_after_s"
    assert all("restart in 0.05 s (exit 1 in a row" in line
               for line in recorder.matching("restart in"))


def test_a_killed_process_is_logged_with_its_signal_and_replaced(recorder):
    recorder.supervisor.add(Supervised("worker detect", process_starter(
        python("import time; time.sleep(60)")), QUICK))
    first = recorder.supervisor.pid("worker detect")
    os.kill(first, signal.SIGKILL)
    recorder.run_until(lambda: recorder.matching("restarted"), 10, "the restart")
    second = recorder.supervisor.pid("worker detect")
    assert second is not None and second != first and alive(second)
    assert recorder.matching(f"worker detect (pid {first}) killed by SIGKILL")
    assert recorder.matching(f"worker detect restarted (pid {second})")


def test_what_a_dead_process_left_in_its_group_is_killed(recorder, tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    leaves_a_child = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n")
    recorder.supervisor.add(Supervised("worker snip", process_starter(python(leaves_a_child)),
                                       QUICK))
    wait_until(lambda: pid_file.is_file() and pid_file.read_text(), 10, "the pool child")
    orphan = int(pid_file.read_text())
    os.kill(recorder.supervisor.pid("worker snip"), signal.SIGKILL)
    recorder.run_until(lambda: recorder.matching("killed by SIGKILL"), 10, "the death")
    wait_until(lambda: not alive(orphan), 10, "the dead worker's child to be killed too")


def test_a_start_that_fails_is_retried_and_counted(recorder):
    def refuse() -> None:
        raise RuntimeError("port 6379 is taken")
    recorder.supervisor.add(Supervised("redis", refuse, RestartPolicy(
        first_delay_s=0.05, max_delay_s=0.05, give_up_after=3)))
    recorder.run_until(lambda: recorder.verdict, 10, "giving up on a server that cannot start")
    assert len(recorder.matching("could not start: port 6379 is taken")) == 3
    assert recorder.verdict.startswith("redis ended 3 times in a row")


def test_stop_ends_every_process_even_one_that_ignores_sigterm(recorder, tmp_path: Path):
    ready = tmp_path / "ignoring"
    stubborn = ("import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)")
    recorder.supervisor.add(Supervised("redis", process_starter(
        python("import time; time.sleep(60)"))))
    recorder.supervisor.add(Supervised("api", process_starter(python(stubborn))))
    wait_until(ready.exists, 10, "the process to ignore SIGTERM")
    processes = [supervised.process for supervised in recorder.supervisor.processes]
    recorder.supervisor.stop(timeout_s=1)
    assert all(process.returncode is not None for process in processes)
    assert processes[1].returncode == -signal.SIGKILL
    assert processes[0].returncode == -signal.SIGTERM
    recorder.supervisor.check()
    assert not recorder.matching("restarted"), "nothing is restarted once stopped"
