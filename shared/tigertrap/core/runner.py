"""Running a job's stage in a worker: the bodies of the Celery tasks every stage gets.

From each stage's contract (:mod:`tigertrap.core.contract`), :func:`tigertrap.core.queue.
stage_tasks` registers three tasks on the stage's queue; their bodies are here:

* ``tigertrap.<stage>`` (:func:`run_stage_task`): fills the inputs an earlier stage of the job
  produced (the contract's feeds), loads and confines the settings, and either runs the whole
  stage or — for a sharded stage whose input is larger than one shard — replaces itself with a
  Celery chord: a group of shard tasks that any number of workers run in parallel, and a merge
  task as its body. The rest of the job's chain runs after the merge.
* ``tigertrap.<stage>.shard`` (:func:`run_shard_task`): one shard, retried a bounded number of
  times (``TIGERTRAP_SHARD_RETRIES``), then failing the job with its reason.
* ``tigertrap.<stage>.merge`` (:func:`run_merge_task`): the stage's outputs from the shards'
  files, as an unsharded run writes them.

Every task keeps the job record current and stops a cancelled job at its next progress report.
Tasks are acknowledged late, so a task whose worker died is redone; stage functions are
idempotent and resumable.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

import redis
from celery import Task, chord
from celery.exceptions import Ignore

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.contract import (
    SHARD_SIZE_KEY,
    Feed,
    StageContract,
    contract,
    job_settings,
    load_object,
)
from tigertrap.core.jobs import (
    FINISHED,
    JOB_KEY,
    PROGRESS_INTERVAL_S,
    SHARDS_KEY,
    STAGE_FIELD,
    TASKS_KEY,
    JobCancelled,
    ShardState,
    _client,
)
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import task_name
from tigertrap.core.shards import ShardsIncomplete

__all__ = [
    "MERGE_SUFFIX",
    "SHARD_SUFFIX",
    "fed_params",
    "run_merge_task",
    "run_shard_task",
    "run_stage_task",
]

log = logging.getLogger(__name__)

SHARD_SUFFIX = ".shard"
MERGE_SUFFIX = ".merge"
#: The record field marking that a stage's chord was sent (a redelivered stage task must not
#: send a second one).
SHARDED_FIELD = "sharded:{}"
#: Seconds before a merge whose shards are not all on disk looks again (a chord may fire early
#: when a shard was redelivered and reported twice).
MERGE_RETRY_S = 5
MERGE_RETRIES = 60
#: Redis unreachable in the middle of a task: not the task's fault, never a failure of the job;
#: they pass through the handlers below, and the task is requeued
#: (:func:`tigertrap.core.queue.requeued_when_redis_is_lost`).
REDIS_LOST = (redis.ConnectionError, redis.TimeoutError)


def _data_root() -> DataRoot:
    return DataRoot(load_settings(CoreSettings).tigertrap_data)


def _lookup(result: Mapping[str, Any], dotted: str) -> Any:
    value: Any = result
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _fed_value(feed: Feed, results: Mapping[str, Any]) -> str | None:
    produced = results.get(feed.stage)
    if not isinstance(produced, Mapping):
        return None
    for dotted in feed.results:
        value = _lookup(produced, dotted)
        if isinstance(value, str) and value:
            if feed.part == "folder":
                return value.rsplit("/", 1)[0] if "/" in value else "."
            if feed.part == "name":
                return value.rsplit("/", 1)[-1]
            return value
    return None


def fed_params(stage_contract: StageContract, params: Mapping[str, Any],
               results: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` (keys lower-cased) with each feed's key filled from an earlier stage's
    result when the user did not give it (results are data-root-relative paths)."""
    given = {str(key).lower(): value for key, value in params.items()}
    for feed in stage_contract.feeds:
        if given.get(feed.key) in (None, ""):
            value = _fed_value(feed, results)
            if value is not None:
                given[feed.key] = value
    return given


def _relative_results(stage_contract: StageContract, result: dict[str, Any],
                      root: DataRoot) -> dict[str, Any]:
    for key in stage_contract.result_paths:
        value = result.get(key)
        if value:
            result[key] = root.relative(value)
    return result


class _Job:
    """The job record as one task sees it."""

    def __init__(self, job_id: str, position: int) -> None:
        self.client: redis.Redis = _client()
        self.id = job_id
        self.position = position
        self.key = JOB_KEY.format(job_id)

    def status(self) -> str | None:
        return self.client.hget(self.key, "status")  # type: ignore[return-value]

    def require_active(self) -> None:
        """Ignore the task (acknowledged, nothing run) when the job is gone or finished."""
        status = self.status()
        if status is None or status in FINISHED:
            raise Ignore()

    def results(self) -> dict[str, Any]:
        return json.loads(self.client.hget(self.key, "results") or "{}")

    def stage_count(self) -> int:
        return len(json.loads(self.client.hget(self.key, "stages") or "[]"))

    def set_stage(self, **fields: Any) -> None:
        field = STAGE_FIELD.format(self.position)
        state = json.loads(self.client.hget(self.key, field) or "{}")
        state.update(fields)
        self.client.hset(self.key, field, json.dumps(state))

    def start(self, stage: str, worker: str | None) -> None:
        now = time.time()
        self.client.hset(self.key, mapping={
            "status": "running", "stage": stage, "stage_index": self.position,
            "processed": 0, "total": 0, "worker": worker or "", "updated": now})
        self.set_stage(status="running", started=now, processed=0, total=0)

    def fail(self, stage: str, message: str) -> None:
        self.client.hset(self.key, mapping={"status": "failed", "error": f"{stage}: {message}",
                                            "updated": time.time()})
        self.set_stage(status="failed", finished=time.time())

    def finish(self, stage: str, result: dict[str, Any]) -> None:
        results = self.results()
        results[stage] = result
        now = time.time()
        update: dict[str, Any] = {"results": json.dumps(results), "updated": now}
        last = self.position == self.stage_count() - 1
        if last and self.status() not in FINISHED:
            update["status"] = "succeeded"
        self.client.hset(self.key, mapping=update)
        self.set_stage(status="succeeded", finished=now)

    def shard(self, index: int) -> ShardState:
        raw = self.client.hget(SHARDS_KEY.format(self.id, self.position), str(index))
        return ShardState.model_validate_json(raw) if raw else ShardState(index=index)

    def set_shard(self, state: ShardState) -> None:
        state.updated = time.time()
        self.client.hset(SHARDS_KEY.format(self.id, self.position), str(state.index),
                         state.model_dump_json())
        self.client.hset(self.key, "updated", state.updated)


class _Reporter:
    """The ``progress(processed, total)`` callable handed to a stage or shard function: writes
    progress at most every :data:`PROGRESS_INTERVAL_S` and raises :class:`JobCancelled` once
    the job is cancelled."""

    def __init__(self, job: _Job, shard: ShardState | None = None) -> None:
        self.job = job
        self.shard = shard
        self.last = 0.0

    def __call__(self, processed: int, total: int) -> None:
        now = time.monotonic()
        if processed not in (0, total) and now - self.last < PROGRESS_INTERVAL_S:
            return
        self.last = now
        if self.job.status() == "cancelled":
            raise JobCancelled(self.job.key)
        if self.shard is not None:
            self.shard.processed, self.shard.total = processed, total
            self.job.set_shard(self.shard)
            return
        self.job.client.hset(self.job.key, mapping={"processed": processed, "total": total,
                                                    "updated": time.time()})
        self.job.set_stage(processed=processed, total=total)


def _settings(stage_contract: StageContract, params: Mapping[str, Any], root: DataRoot) -> Any:
    return job_settings(stage_contract.stage, load_object(stage_contract.settings), params,
                        root)


def _shard_size(stage_contract: StageContract, params: Mapping[str, Any]) -> int:
    if stage_contract.sharding is None:
        return 0
    value = params.get(SHARD_SIZE_KEY)
    if value in (None, ""):
        return stage_contract.sharding.default_size
    size = int(value)
    if size < 0:
        raise ValueError(f"{stage_contract.stage}.SHARD_SIZE must be 0 (no shards) or more")
    return size


def _send_chord(task: Task, job: _Job, stage_contract: StageContract, params: dict[str, Any],
                shards: list[dict[str, Any]]) -> None:
    stage = stage_contract.stage
    if not job.client.hsetnx(job.key, SHARDED_FIELD.format(job.position), "1"):
        log.warning("%s of job %s: shards already sent (a redelivered task)", stage, job.id)
        raise Ignore()
    shard_ids = [uuid.uuid4().hex for _ in shards]
    merge_id = uuid.uuid4().hex
    job.client.sadd(TASKS_KEY.format(job.id), *shard_ids, merge_id)
    for index, shard in enumerate(shards):
        job.set_shard(ShardState(index=index, total=int(shard.get("count", 0))))
    job.set_stage(status="running", shard_count=len(shards))
    app = task.app
    queue = stage_contract.queue_name
    header = [app.signature(task_name(stage) + SHARD_SUFFIX, queue=queue, task_id=shard_id,
                            args=(job.id, job.position, params, index, shard), immutable=True)
              for index, (shard, shard_id) in enumerate(zip(shards, shard_ids, strict=True))]
    body = app.signature(task_name(stage) + MERGE_SUFFIX, queue=queue, task_id=merge_id,
                         args=(job.id, job.position, params, shards))
    log.info("%s of job %s: %d shards", stage, job.id, len(shards))
    raise task.replace(chord(header, body))


def run_stage_task(task: Task, job_id: str, position: int, stage: str,
                   params: dict[str, Any]) -> dict[str, Any]:
    """The body of ``tigertrap.<stage>``: the whole stage, or its shards as a chord."""
    job = _Job(job_id, position)
    job.require_active()
    stage_contract = contract(stage)
    root = _data_root()
    given = fed_params(stage_contract, params, job.results())
    job.start(stage, task.request.hostname)
    try:
        settings = _settings(stage_contract, given, root)
        size = _shard_size(stage_contract, given)
        if size and stage_contract.sharding is not None:
            split = load_object(stage_contract.sharding.split)
            shards = [{**shard, "index": index, "of": len(found)}
                      for found in [split(settings, size, root.root)]
                      for index, shard in enumerate(found)]
            if len(shards) > 1:
                _send_chord(task, job, stage_contract, given, shards)
        result = load_object(stage_contract.run)(settings, _Reporter(job), root.root)
    except JobCancelled:
        raise Ignore() from None
    except REDIS_LOST:
        raise
    except Exception as error:
        if not isinstance(error, Ignore):
            job.fail(stage, str(error))
        raise
    result = _relative_results(stage_contract, result, root)
    job.finish(stage, result)
    return result


def run_shard_task(task: Task, job_id: str, position: int, stage: str, params: dict[str, Any],
                   index: int, shard: dict[str, Any]) -> dict[str, Any]:
    """The body of ``tigertrap.<stage>.shard``: one shard; retried, then failing the job."""
    job = _Job(job_id, position)
    job.require_active()
    stage_contract = contract(stage)
    assert stage_contract.sharding is not None
    root = _data_root()
    state = job.shard(index)
    state.status, state.worker, state.error = "running", task.request.hostname, None
    state.attempts += 1
    job.set_shard(state)
    try:
        settings = _settings(stage_contract, params, root)
        run_shard = load_object(stage_contract.sharding.run_shard)
        result = run_shard(settings, shard, _Reporter(job, state), root.root)
    except JobCancelled:
        raise Ignore() from None
    except REDIS_LOST:
        raise
    except Exception as error:
        retries = load_settings(CoreSettings).tigertrap_shard_retries
        state.status, state.error = "failed", f"{type(error).__name__}: {error}"
        job.set_shard(state)
        if task.request.retries < retries:
            log.warning("%s shard %d of job %s failed (%s); retrying", stage, index, job_id,
                        error)
            raise task.retry(exc=error, countdown=min(2 ** task.request.retries, 30),
                             max_retries=retries) from error
        shards = job.client.hlen(SHARDS_KEY.format(job_id, position))
        job.fail(stage, f"shard {index + 1} of {shards} failed after {state.attempts} "
                        f"attempts: {error}")
        raise
    state.status = "succeeded"
    state.processed = state.total = int(result.get("images", state.total) or state.total)
    job.set_shard(state)
    return result


def run_merge_task(task: Task, shard_results: list[Any], job_id: str, position: int,
                   stage: str, params: dict[str, Any], shards: list[dict[str, Any]]
                   ) -> dict[str, Any]:
    """The body of ``tigertrap.<stage>.merge``: the stage's outputs from its shards' files."""
    job = _Job(job_id, position)
    job.require_active()
    stage_contract = contract(stage)
    assert stage_contract.sharding is not None
    root = _data_root()
    job.set_stage(status="merging")
    try:
        settings = _settings(stage_contract, params, root)
        merge = load_object(stage_contract.sharding.merge)
        result = merge(settings, shards, root.root)
    except ShardsIncomplete as error:
        if task.request.retries < MERGE_RETRIES:
            raise task.retry(exc=error, countdown=MERGE_RETRY_S,
                             max_retries=MERGE_RETRIES) from error
        job.fail(stage, f"merging shards: {error}")
        raise
    except REDIS_LOST:
        raise
    except Exception as error:
        job.fail(stage, f"merging shards: {error}")
        raise
    result = _relative_results(stage_contract, result, root)
    result["shards"] = len(shards)
    job.finish(stage, result)
    return result
