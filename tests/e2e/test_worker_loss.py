"""Worker loss at every level, with real signals: a job's sharded detect stage loses a pool
child (SIGKILL), a whole worker (SIGKILL of its process group) or a frozen host (SIGSTOP, then
SIGKILL), and still completes with every image in ``md.json`` exactly once; a task running
longer than the visibility timeout on a healthy worker is not handed out again (its lease).

The workers run with a visibility timeout of a few seconds (the shipped default is an hour)
and a heartbeat TTL of about a second, so that each loss is seen and repaired quickly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import Workers, wait_for_job, wait_until, worker_env
from tests.detect.conftest import tiny_checkpoint  # noqa: F401 (a fixture)
from tests.e2e.test_sharding import WEIGHTS, _frames
from tigertrap.core.cli import _show
from tigertrap.core.jobs import JobStatus, ShardState, StageRequest, job_status, submit_job
from tigertrap.core.md_results import read_md_results

TIMEOUT_S = 300
#: Seconds before a lost worker's task is handed out again, in these tests.
VISIBILITY_TIMEOUT_S = 5
#: 240 frames in four shards of 60: a shard lasts seconds on an idle machine (the tiny detector
#: does tens of frames a second), so a test can act while one is half done.
FRAME_COPIES = 60
SHARD_SIZE = 60


def loss_env(redis_url: str, data_root: Path, visibility_s: int = VISIBILITY_TIMEOUT_S
             ) -> dict[str, str]:
    """Workers that notice a lost peer within seconds."""
    return worker_env(redis_url, data_root, TIGERTRAP_VISIBILITY_TIMEOUT=str(visibility_s),
                      TIGERTRAP_HEARTBEAT_S="0.3", TIGERTRAP_HEARTBEAT_TTL_S="1.2")


@pytest.fixture
def pool(redis_url: str, data_root: Path, tmp_path: Path) -> Iterator[Workers]:
    workers = Workers(loss_env(redis_url, data_root), tmp_path)
    try:
        yield workers
    finally:
        workers.stop_all()


@pytest.fixture
def tiny_weights(data_root: Path, tiny_checkpoint: Path) -> str:  # noqa: F811
    """The tiny detector's checkpoint in the data root; its data-root-relative path."""
    target = data_root / WEIGHTS
    target.parent.mkdir(parents=True)
    shutil.copyfile(tiny_checkpoint, target)
    return WEIGHTS


def hostname(process: subprocess.Popen[bytes]) -> str:
    """The Celery node name ``tigertrap worker detect`` gives itself (``detect.<pid>@host``)."""
    return f"detect.{process.pid}@{os.uname().nodename}"


def running_shard_on(job: str, worker: str) -> ShardState | None:
    """A shard of ``job`` that ``worker`` is half-way through (some images done, not all)."""
    for shard in job_status(job).stage_progress[0].shards:
        if shard.status == "running" and shard.worker == worker \
                and 0 < shard.processed < shard.total:
            return shard
    return None


def submit_detect(data_root: Path, fixtures_dir: Path, weights_file: str,
                  shard_size: int = SHARD_SIZE,
                  copies: int = FRAME_COPIES) -> tuple[str, list[str]]:
    folder = data_root / "datasets" / "a" / "images"
    _frames(folder, fixtures_dir, copies=copies)
    job = submit_job([StageRequest(stage="detect", params={
        "INPUT_DIR": "datasets/a/images", "MD_MODEL": weights_file,
        "SHARD_SIZE": shard_size})])
    return job, sorted(p.name for p in folder.iterdir())


def assert_every_image_once(status: JobStatus, data_root: Path, images: list[str],
                            workers: Workers) -> None:
    assert status.status == "succeeded", status.error or workers.logs()
    folder = data_root / "datasets" / "a" / "images"
    files = [entry.file for entry in read_md_results(folder / "md.json").images]
    assert sorted(files) == images  # each image once: no shard lost, none merged twice
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []
    assert all(shard.status == "succeeded" for shard in status.stage_progress[0].shards)


def full_logs(folder: Path) -> str:
    """Every line the workers started with ``Workers(..., folder)`` logged."""
    return "\n".join(log.read_text(errors="replace") for log in sorted(folder.glob("worker-*.log")))


def pool_children(process: subprocess.Popen[bytes]) -> list[int]:
    """The pids of a prefork worker's pool processes."""
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def test_sigkill_of_a_pool_child_mid_shard_redoes_that_shard_once(
        pool: Workers, data_root: Path, fixtures_dir: Path, tiny_weights: str):
    worker = pool.start("detect")
    job, images = submit_detect(data_root, fixtures_dir, tiny_weights)
    shard = wait_until(lambda: running_shard_on(job, hostname(worker)), TIMEOUT_S,
                       "a shard in progress")
    (child,) = pool_children(worker)
    os.kill(child, signal.SIGKILL)

    status = wait_for_job(job, pool, TIMEOUT_S)
    assert_every_image_once(status, data_root, images, pool)
    assert status.stage_progress[0].shards[shard.index].attempts == 2
    assert worker.poll() is None  # the worker itself lived on, with a new child


def test_sigkill_of_a_whole_worker_mid_shard_hands_its_shard_to_another(
        pool: Workers, data_root: Path, fixtures_dir: Path, tiny_weights: str):
    doomed = pool.start("detect")
    job, images = submit_detect(data_root, fixtures_dir, tiny_weights)
    shard = wait_until(lambda: running_shard_on(job, hostname(doomed)), TIMEOUT_S,
                       "a shard in progress")
    survivor = pool.start("detect")
    pool.kill_hard(doomed)  # the worker and its pool child, as a crashed container

    # The record does not just say "running": it says the shard's worker went silent.
    def silent() -> JobStatus | None:
        status = job_status(job)
        state = status.stage_progress[0].shards[shard.index]
        dead = state.worker == hostname(doomed) and state.worker_alive is False
        return status if dead and (state.worker_silent_s or 0) > 1 else None

    seen = wait_until(silent, TIMEOUT_S, "the shard's worker shown as silent")
    assert seen.status == "running" and seen.stage_progress[0].shards[shard.index].status \
        == "running"
    assert f"worker {hostname(doomed)} silent for " in _show(seen)  # tigertrap jobs status

    status = wait_for_job(job, pool, TIMEOUT_S)
    assert_every_image_once(status, data_root, images, pool)
    redone = status.stage_progress[0].shards[shard.index]
    assert redone.worker == hostname(survivor) and redone.attempts == 2


def test_a_frozen_host_loses_its_shard_after_the_visibility_timeout(
        pool: Workers, data_root: Path, fixtures_dir: Path, tiny_weights: str):
    frozen = pool.start("detect")
    job, images = submit_detect(data_root, fixtures_dir, tiny_weights)
    shard = wait_until(lambda: running_shard_on(job, hostname(frozen)), TIMEOUT_S,
                       "a shard in progress")
    os.killpg(frozen.pid, signal.SIGSTOP)  # the host hangs: no heartbeat, no lease renewal
    stopped = time.monotonic()
    try:
        survivor = pool.start("detect")
        redone = wait_until(
            lambda: job_status(job).stage_progress[0].shards[shard.index].worker
            == hostname(survivor), TIMEOUT_S, "the frozen host's shard taken over")
        assert redone
        # handed out only once its lease ran out (no earlier than the timeout)
        assert time.monotonic() - stopped >= VISIBILITY_TIMEOUT_S - 1
    finally:
        pool.kill_hard(frozen)

    status = wait_for_job(job, pool, TIMEOUT_S)
    assert_every_image_once(status, data_root, images, pool)


def test_a_task_running_longer_than_the_visibility_timeout_is_not_handed_out_again(
        redis_url: str, data_root: Path, fixtures_dir: Path, tiny_weights: str, tmp_path: Path):
    visibility_s = 1
    workers = Workers(loss_env(redis_url, data_root, visibility_s), tmp_path)
    try:
        workers.start("detect")
        job, images = submit_detect(data_root, fixtures_dir, tiny_weights, shard_size=0)
        wait_until(lambda: job_status(job).status == "running", TIMEOUT_S, "the stage to start")
        workers.start("detect")  # idle, sweeping for expired leases: it must find none
        status = wait_for_job(job, workers, TIMEOUT_S)
    finally:
        workers.stop_all()

    assert status.status == "succeeded", status.error or workers.logs()
    stage = status.stage_progress[0]
    assert stage.finished - stage.started > 3 * visibility_s  # long enough to prove it
    task = f"tigertrap.detect[{_task_id(job)}]"
    logs = full_logs(tmp_path)
    assert logs.count(f"Task {task} received") == 1, logs[-6000:]
    entries = read_md_results(data_root / "datasets" / "a" / "images" / "md.json").images
    assert sorted(entry.file for entry in entries) == images


def _task_id(job: str) -> str:
    import json

    from tigertrap.core.jobs import JOB_KEY, _client

    return json.loads(_client().hget(JOB_KEY.format(job), "task_ids"))[0]


def test_redis_restarted_mid_job_loses_no_queued_shard(
        data_root: Path, fixtures_dir: Path, tiny_weights: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch):
    from tigertrap.core.redis_server import start_redis

    folder = tmp_path / "redis"
    server = start_redis(folder)
    monkeypatch.setenv("REDIS_URL", server.url)
    workers = Workers(loss_env(server.url, data_root), tmp_path)
    try:
        worker = workers.start("detect")
        job, images = submit_detect(data_root, fixtures_dir, tiny_weights, shard_size=30)
        wait_until(lambda: running_shard_on(job, hostname(worker)), TIMEOUT_S,
                   "a shard in progress")
        queued = redis.Redis.from_url(server.url).llen("detect")
        assert queued >= 2  # shards still waiting in the queue when Redis goes down
        server.stop()  # SIGTERM: Redis writes its append-only file and exits
        server = start_redis(folder, port=server.port)
        status = wait_for_job(job, workers, TIMEOUT_S)
        assert_every_image_once(status, data_root, images, workers)
    finally:
        workers.stop_all()
        server.stop()
