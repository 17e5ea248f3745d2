"""Benchmark: one detect job over many frames on 1 and on 2 workers, sharded and unsharded.

A real Redis (``start_redis``) and real ``tigertrap worker detect`` processes (prefork, one
pool process each), each pinned to one core (``taskset``) with one torch/OpenMP thread, so that
"2 workers" means one per core. The model is the tiny random-weight YOLOv5n checkpoint at
320 px (``tests/detect/tiny_detector.py``); the frames are the real fixture frames repeated
(``--frames``, default 400). Each configuration runs ``--rounds`` times, interleaved; the
best round counts (other processes on a shared machine slow single rounds down). Printed:
wall time from submission to the job's ``succeeded``, images/s, the 2-worker speed-up over 1
worker (sharded), and the sharding overhead on 1 worker against the unsharded stage, with
the machine, its CPU flags and the load average before and after.

    .venv/bin/python scripts/bench/sharding_scaling.py [--frames 400] [--shard-size 50]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from classify_engine import machine  # noqa: E402

from tests.detect.tiny_detector import build_tiny_md_checkpoint  # noqa: E402
from tigertrap.core.images import is_image_file  # noqa: E402
from tigertrap.core.redis_server import RedisServer, start_redis  # noqa: E402

FIXTURES = Path(os.environ.get("TIGERTRAP_FIXTURES", REPO.parent / "shared" / "fixtures"))
WEIGHTS = "models/detectors/tiny.pt"
JOB_TIMEOUT_S = 1800


def cpu_flags() -> str:
    """The CPU's SIMD flags that matter to inference (from /proc/cpuinfo)."""
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return " ".join(flag for flag in wanted if flag in flags)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def make_frames(folder: Path, count: int) -> None:
    frames = sorted(p for p in (FIXTURES / "images").rglob("*") if is_image_file(p))
    folder.mkdir(parents=True)
    for index in range(count):
        source = frames[index % len(frames)]
        shutil.copyfile(source, folder / f"f{index:05d}{source.suffix.lower()}")


def _serial_parts(status: Any) -> str:
    """Where a sharded job spends time no second worker can share: from submission to the
    stage task's start, and from the last shard's end to the merged result."""
    stage = status.stage_progress[0]
    if not stage.shards:
        return ""
    last_shard = max(shard.updated or 0 for shard in stage.shards)
    return (f" [queue to stage start {stage.started - status.created:.2f} s, last shard to "
            f"merged {stage.finished - last_shard:.2f} s]")


class Cluster:
    """Redis, a data root and detect workers, each pinned to one core."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root = root
        self.data = root / "data"
        (self.data / "models" / "detectors").mkdir(parents=True)
        build_tiny_md_checkpoint(self.data / WEIGHTS)
        self.redis: RedisServer = start_redis(root / "redis")
        self.env = {**os.environ, "REDIS_URL": self.redis.url, "TIGERTRAP_DATA": str(self.data),
                    "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **env}
        self.env.pop("PYTEST_CURRENT_TEST", None)
        os.environ["REDIS_URL"] = self.redis.url
        os.environ["TIGERTRAP_DATA"] = str(self.data)
        self.workers: list[subprocess.Popen[bytes]] = []
        self.last_split_merge = ""

    def start_worker(self, core: int) -> subprocess.Popen[bytes]:
        log = open(self.root / f"worker-{len(self.workers)}.log", "wb")  # noqa: SIM115
        command = [sys.executable, "-m", "tigertrap.core", "worker", "detect", "--loglevel",
                   "WARNING"]
        if shutil.which("taskset") and (os.cpu_count() or 1) > core:
            command = ["taskset", "-c", str(core), *command]
        process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.workers.append(process)
        return process

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.workers.clear()

    @contextmanager
    def running(self, count: int) -> Iterator[None]:
        for core in range(count):
            self.start_worker(core)
        try:
            self.warm_up(count)
            yield
        finally:
            self.stop_workers()

    def warm_up(self, count: int) -> None:
        """One small sharded job, so every worker has imported torch before timing starts."""
        folder = self.data / "warm" / f"w{time.monotonic_ns()}"
        make_frames(folder, 2 * count)
        self.detect(folder, shard_size=1)

    def detect(self, folder: Path, shard_size: int) -> float:
        """Submit detect over ``folder``; seconds until it succeeded."""
        from tigertrap.core.jobs import FINISHED, StageRequest, job_status, submit_job

        start = time.perf_counter()
        job = submit_job([StageRequest(stage="detect", params={
            "INPUT_DIR": str(folder.relative_to(self.data)), "MD_MODEL": WEIGHTS,
            "SHARD_SIZE": shard_size})])
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            status = job_status(job)
            if status.status in FINISHED:
                if status.status != "succeeded":
                    raise RuntimeError(f"job {job} {status.status}: {status.error}")
                self.last_split_merge = _serial_parts(status)
                return time.perf_counter() - start
            time.sleep(0.05)  # polling the job record; this is a benchmark, not a test
        raise RuntimeError(f"job {job} did not finish in {JOB_TIMEOUT_S} s")

    def close(self) -> None:
        self.stop_workers()
        self.redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=400)
    parser.add_argument("--shard-size", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"machine: {machine()}; flags: {cpu_flags()}; {when}")
    print(f"load average before: {load()}")
    times: dict[str, list[float]] = {"unsharded, 1 worker": [], "sharded, 1 worker": [],
                                     "sharded, 2 workers": []}
    root = Path(tempfile.mkdtemp(prefix="tt-bench-"))
    cluster = Cluster(root)
    try:
        run = 0
        for _ in range(args.rounds):
            for label, workers, shard_size in (("unsharded, 1 worker", 1, 0),
                                               ("sharded, 1 worker", 1, args.shard_size),
                                               ("sharded, 2 workers", 2, args.shard_size)):
                folder = cluster.data / "datasets" / f"run{run}" / "images"
                run += 1
                make_frames(folder, args.frames)
                with cluster.running(workers):
                    seconds = cluster.detect(folder, shard_size)
                times[label].append(seconds)
                print(f"  {label}: {seconds:.1f} s (load {load()}){cluster.last_split_merge}",
                      flush=True)
    finally:
        cluster.close()
        shutil.rmtree(root, ignore_errors=True)
    best = {label: min(values) for label, values in times.items()}
    print(f"\n{args.frames} frames, shards of {args.shard_size}; best of {args.rounds}:")
    for label, seconds in best.items():
        print(f"| {label} | {seconds:.1f} s | {args.frames / seconds:.1f} img/s |")
    speed_up = best["sharded, 1 worker"] / best["sharded, 2 workers"]
    print(f"speed-up, 2 workers vs 1 (sharded): {speed_up:.2f}x")
    overhead = best["sharded, 1 worker"] / best["unsharded, 1 worker"] - 1
    print(f"sharding overhead on 1 worker: {overhead * 100:+.1f} %")
    print(f"load average after: {load()}")


if __name__ == "__main__":
    main()
