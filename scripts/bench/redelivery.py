"""Benchmark: from a worker's SIGKILL (the whole worker, as a crashed host) to its shard
finished on another worker.

Two ``tigertrap worker detect`` processes (one per core, as in ``sharding_scaling.py``) run a
sharded detect job; once worker A is inside a shard, A's whole process group gets SIGKILL.
The shard comes back only when its lease runs out: the visibility timeout, then the next sweep
of the surviving worker. The shipped defaults (``TIGERTRAP_VISIBILITY_TIMEOUT`` 3600 s, a
sweep every 10 s) are scaled down as the tests do (``--visibility`` 5 s, sweep every 1 s:
``restore_interval``). Printed per round: seconds from the kill to the shard taken over by B,
and to the shard finished by B.

    .venv/bin/python scripts/bench/redelivery.py [--visibility 5] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from classify_engine import machine
from sharding_scaling import WEIGHTS, Cluster, cpu_flags, load, make_frames

T = TypeVar("T")
POLL_S = 0.05
TIMEOUT_S = 600


def node(process_pid: int) -> str:
    return f"detect.{process_pid}@{os.uname().nodename}"


def wait(condition: Callable[[], T], what: str) -> T:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    raise RuntimeError(f"timed out waiting for {what}")


def one_round(cluster: Cluster, index: int, frames: int, shard_size: int) -> tuple[float, float]:
    from tigertrap.core.jobs import ShardState, StageRequest, job_status, submit_job

    doomed = cluster.start_worker(0)
    survivor = cluster.start_worker(1)
    try:
        cluster.warm_up(2)
        folder = cluster.data / "datasets" / f"r{index}" / "images"
        make_frames(folder, frames)
        job = submit_job([StageRequest(stage="detect", params={
            "INPUT_DIR": str(folder.relative_to(cluster.data)), "MD_MODEL": WEIGHTS,
            "SHARD_SIZE": shard_size})])

        def doomed_shard() -> int | None:
            for shard in job_status(job).stage_progress[0].shards:
                if shard.status == "running" and shard.worker == node(doomed.pid) \
                        and shard.processed > 0:
                    return shard.index + 1  # truthy
            return None

        shard = wait(doomed_shard, "a shard running on worker A") - 1
        os.killpg(doomed.pid, signal.SIGKILL)
        killed = time.perf_counter()
        doomed.wait()

        def state() -> ShardState:
            return job_status(job).stage_progress[0].shards[shard]

        wait(lambda: state().worker == node(survivor.pid), "the shard taken over")
        taken = time.perf_counter() - killed
        wait(lambda: state().status == "succeeded", "the shard finished")
        done = time.perf_counter() - killed
        wait(lambda: job_status(job).status == "succeeded", "the job")
        return taken, done
    finally:
        cluster.stop_workers()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visibility", type=int, default=5, help="TIGERTRAP_VISIBILITY_TIMEOUT")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from tigertrap.core.queue import restore_interval

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"machine: {machine()}; flags: {cpu_flags()}; {when}; load {load()}")
    print(f"visibility timeout {args.visibility} s, sweep every "
          f"{restore_interval(args.visibility)} s; shards of {args.shard_size} frames")
    root = Path(tempfile.mkdtemp(prefix="tt-redeliver-"))
    cluster = Cluster(root, TIGERTRAP_VISIBILITY_TIMEOUT=str(args.visibility))
    try:
        for index in range(args.rounds):
            taken, done = one_round(cluster, index, args.frames, args.shard_size)
            print(f"| {index + 1} | {taken:.1f} s | {done:.1f} s | {load()} |", flush=True)
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
