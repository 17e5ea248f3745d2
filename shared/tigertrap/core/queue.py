"""The Celery application: Redis broker and backend, one queue per stage, no lost jobs.

Stages register their tasks with :func:`stage_tasks` (derived from their contracts); a pipeline
addresses tasks by name only
(``tigertrap.<stage>``), so the process that submits jobs needs none of the stages' heavy
dependencies. Settings that keep a job from being lost: late acknowledgement, rejection (and so
redelivery) when the worker process dies, prefetch 1, and a visibility timeout after which a
task whose worker is gone (its lease not renewed: :mod:`tigertrap.core.lease`) is redone
elsewhere, swept for every :func:`restore_interval`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import redis
from celery import Celery, Task
from celery.exceptions import Reject

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.contract import contracts, queue_names
from tigertrap.core.workers import HeartbeatStep

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_REDIS_URL",
    "STAGES",
    "ProgressFn",
    "celery_app",
    "make_celery",
    "requeued_when_redis_is_lost",
    "stage_tasks",
    "task_name",
]

#: The worker stages (the pipeline's own in order, then any a package adds): each has its own
#: queue and worker service. A job may also name stages that run on one of these queues
#: (:func:`tigertrap.core.contract.stage_names`). Declared in :mod:`tigertrap.core.stages`.
STAGES = queue_names()
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: Longest a broker socket call may block (seconds).
BROKER_SOCKET_TIMEOUT_S = 10.0

#: ``progress(processed, total)``; raises :class:`tigertrap.core.jobs.JobCancelled` when the
#: job was cancelled, so long loops stop at their next report.
ProgressFn = Callable[[int, int], None]


@contextlib.contextmanager
def requeued_when_redis_is_lost() -> Iterator[None]:
    """Requeue the running task (``Reject(requeue=True)``) when Redis cannot be reached in the
    middle of it (a Redis restart): the task is redone, not failed, and a shard of a chord is
    not counted as a failed part. If the rejection cannot reach Redis either, the message stays
    unacknowledged and comes back after the visibility timeout (it is in the append-only file).
    """
    from kombu.exceptions import OperationalError

    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError, OperationalError) as error:
        log.warning("Redis lost in the middle of a task (%s); requeueing it", error)
        raise Reject(error, requeue=True) from error


def task_name(stage: str) -> str:
    """The Celery task name of ``stage``."""
    return f"tigertrap.{stage}"


def restore_interval(visibility_timeout: int) -> int:
    """Seconds between two sweeps for expired leases: a twentieth of the visibility timeout,
    from 1 to 10 s (kombu's default sweep, 100 s, would dominate a short timeout)."""
    return max(1, min(10, visibility_timeout // 20))


def redis_url() -> str:
    """``REDIS_URL`` from the environment, or the local default."""
    return load_settings(CoreSettings).redis_url or DEFAULT_REDIS_URL


def make_celery(url: str | None = None) -> Celery:
    """A Celery app on Redis ``url`` (default: ``REDIS_URL``) with tigertrap's delivery rules."""
    settings = load_settings(CoreSettings)
    url = url or settings.redis_url or DEFAULT_REDIS_URL
    # Socket timeouts bound every broker call (publish, revoke) of a process that submits jobs:
    # a hung Redis fails a request after BROKER_SOCKET_TIMEOUT_S instead of holding its thread
    # (and a kombu pool connection) forever. Workers' BRPOP waits are shorter (1 s) than this.
    timeout = settings.tigertrap_visibility_timeout
    transport = {"visibility_timeout": timeout,
                 # every worker looks for expired leases this often (kombu: interval x throttle)
                 "unacked_restore_interval": restore_interval(timeout),
                 "unacked_restore_throttle": 1,
                 "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
                 "socket_connect_timeout": BROKER_SOCKET_TIMEOUT_S}
    app = Celery("tigertrap", broker=url, backend=url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_routes={f"{task_name(c.stage)}*": {"queue": c.queue_name}
                     for c in contracts().values()},
        task_default_queue="default",
        broker_transport_options=transport,
        result_backend_transport_options=transport,
        broker_connection_retry_on_startup=True,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_track_started=True,
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
        redis_socket_connect_timeout=BROKER_SOCKET_TIMEOUT_S,
    )
    app.steps["consumer"].add(HeartbeatStep)  # liveness in Redis: tigertrap.core.workers
    return app


@functools.lru_cache(maxsize=4)
def _app_for(url: str) -> Celery:
    return make_celery(url)


def celery_app(url: str | None = None) -> Celery:
    """The process-wide app for ``url`` (default ``REDIS_URL``)."""
    return _app_for(url or redis_url())


def stage_tasks(stage: str) -> dict[str, Task]:
    """Register the Celery tasks of ``stage``, derived from its contract: the stage task
    (``tigertrap.<stage>``) and, for a sharded stage, its shard and merge tasks (bodies in
    :mod:`tigertrap.core.runner`). A stage's ``tasks`` module calls this; its worker loads it.

    Every task is acknowledged late and rejected (so redelivered) when its worker dies; stage
    functions are idempotent and resumable. While a task runs, its lease keeps its message
    from being handed to another worker (:func:`tigertrap.core.lease.task_lease`).
    """
    from tigertrap.core.contract import contract
    from tigertrap.core.lease import task_lease
    from tigertrap.core.runner import (
        MERGE_SUFFIX,
        SHARD_SUFFIX,
        run_merge_task,
        run_shard_task,
        run_stage_task,
    )

    stage_contract = contract(stage)
    app = celery_app()
    options: dict[str, Any] = {"bind": True, "acks_late": True, "reject_on_worker_lost": True}
    name = task_name(stage)

    def run(self: Task, job_id: str, position: int, params: dict[str, Any]) -> dict[str, Any]:
        with task_lease(self), requeued_when_redis_is_lost():
            return run_stage_task(self, job_id, position, stage, params)

    run.__doc__ = stage_contract.description
    options["queue"] = stage_contract.queue_name
    tasks = {"run": app.task(name=name, **options)(run)}
    if stage_contract.sharding is not None:
        def shard(self: Task, job_id: str, position: int, params: dict[str, Any], index: int,
                  spec: dict[str, Any]) -> dict[str, Any]:
            with task_lease(self), requeued_when_redis_is_lost():
                return run_shard_task(self, job_id, position, stage, params, index, spec)

        def merge(self: Task, shard_results: list[Any], job_id: str, position: int,
                  params: dict[str, Any], shards: list[dict[str, Any]]) -> dict[str, Any]:
            with task_lease(self), requeued_when_redis_is_lost():
                return run_merge_task(self, shard_results, job_id, position, stage, params,
                                      shards)

        tasks["shard"] = app.task(name=name + SHARD_SUFFIX, **options)(shard)
        tasks["merge"] = app.task(name=name + MERGE_SUFFIX, **options)(merge)
    return tasks
