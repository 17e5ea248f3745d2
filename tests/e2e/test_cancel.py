"""Cancelling a sharded job: its queued shard tasks are revoked on the live worker and
discarded unrun, the running shard stops at its next progress report, and no merge runs."""

from __future__ import annotations

import os
import signal

import redis

from tests.conftest import Workers, wait_until
from tests.detect.conftest import tiny_checkpoint  # noqa: F401 (a fixture)
from tests.e2e.test_worker_loss import (  # noqa: F401 (fixtures)
    TIMEOUT_S,
    full_logs,
    hostname,
    pool,
    pool_children,
    running_shard_on,
    submit_detect,
    tiny_weights,
)
from tigertrap.core.jobs import cancel_job, job_status, job_task_ids
from tigertrap.core.queue import celery_app


def test_cancel_revokes_the_queued_shards_and_stops_the_running_one(
        pool: Workers, redis_url: str, data_root, fixtures_dir, tiny_weights: str,  # noqa: F811
        tmp_path):
    worker = pool.start("detect")
    job, _ = submit_detect(data_root, fixtures_dir, tiny_weights, shard_size=30)
    running = wait_until(lambda: running_shard_on(job, hostname(worker)), TIMEOUT_S,
                         "a shard in progress")
    # Hold the running shard where it is: its pool process stops; the worker's main process
    # (which takes control commands such as revoke) runs on, and with prefetch 1 it has taken
    # no other shard, so the rest wait in the queue.
    (child,) = pool_children(worker)
    os.kill(child, signal.SIGSTOP)
    try:
        shards = job_status(job).stage_progress[0].shards
        queued = [shard.index for shard in shards if shard.status == "queued"]
        assert len(queued) >= 6
        assert cancel_job(job).status == "cancelled"
        revoked = celery_app().control.inspect(destination=[hostname(worker)],
                                               timeout=10).revoked()
        assert job_task_ids(job) <= set(revoked[hostname(worker)])  # stage, shards, merge
    finally:
        os.kill(child, signal.SIGCONT)

    client = redis.Redis.from_url(redis_url)
    # The running shard stops at its next progress report; each queued one is discarded unrun.
    wait_until(lambda: client.llen("detect") == 0 and client.hlen("unacked") == 0, TIMEOUT_S,
               "the queued shards to be discarded")
    wait_until(lambda: full_logs(tmp_path).count(
        "Discarding revoked task: tigertrap.detect.shard") >= len(queued), TIMEOUT_S,
        "the worker to discard every queued shard")
    after = job_status(job)
    assert after.status == "cancelled"
    stage = after.stage_progress[0]
    assert all(stage.shards[index].attempts == 0 for index in queued)  # never started
    assert stage.shards[running.index].processed < stage.shards[running.index].total
    assert "md.json" not in {p.name for p in (data_root / "datasets" / "a" / "images").iterdir()}
