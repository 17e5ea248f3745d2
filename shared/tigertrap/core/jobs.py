"""Jobs: a chain of stage tasks with a record in Redis that anyone can read.

A job is one or more stages run in order (``[{"stage": "detect", "params": {...}}, ...]``), or
a named pipeline (:data:`tigertrap.core.stages.PIPELINES`). :func:`submit_job` checks every key
and path against the stage contracts, stores a record and sends a Celery chain by task name;
the stage tasks (:mod:`tigertrap.core.runner`) keep the record current: status, the current
stage, each stage's state and progress, each shard's worker and progress, results or error.
:func:`job_status`, :func:`cancel_job` and :func:`list_jobs` are what the API and the
``tigertrap jobs`` command call.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import redis
from celery import chain
from pydantic import BaseModel, Field, field_validator

from tigertrap.core.config import CoreSettings, load_settings, redis_py_url
from tigertrap.core.contract import UnknownKey, contract, stage_names
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import celery_app, redis_url, task_name
from tigertrap.core.stages import PIPELINES
from tigertrap.core.workers import worker_silence

__all__ = [
    "JobCancelled",
    "JobNotFound",
    "JobStatus",
    "ShardState",
    "StageProgress",
    "StageRequest",
    "cancel_job",
    "check_job",
    "job_status",
    "job_task_ids",
    "list_jobs",
    "pipeline_stages",
    "submit_job",
]

JOB_KEY = "tigertrap:job:{}"
JOB_INDEX = "tigertrap:jobs"
#: Every task id of a job (stages, shards, merges), for cancelling.
TASKS_KEY = "tigertrap:job:{}:tasks"
#: A stage's shards: a hash of shard index -> :class:`ShardState` JSON.
SHARDS_KEY = "tigertrap:job:{}:shards:{}"
#: The job record's field holding a stage's state (JSON) by position.
STAGE_FIELD = "stage:{}"
#: Longest one job-record call to Redis may block (seconds).
REDIS_TIMEOUT_S = 10.0
#: Progress is written at most this often (seconds), plus at the first and last item.
PROGRESS_INTERVAL_S = 0.5

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class JobCancelled(Exception):
    """Raised inside a stage at its next progress report once its job is cancelled."""


class JobNotFound(KeyError):
    """No job with that id."""


class StageRequest(BaseModel):
    """One step of a job: a stage and its parameters (the stage's setting keys)."""

    stage: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stage")
    @classmethod
    def _known_stage(cls, value: str) -> str:
        known = stage_names()
        if value not in known:
            raise ValueError(f"unknown stage {value!r}; stages are {', '.join(known)}")
        return value


class ShardState(BaseModel):
    """One shard of a sharded stage: where it runs and how far it is."""

    index: int
    status: Literal["queued", "running", "succeeded", "failed"] = "queued"
    processed: int = 0
    total: int = 0
    worker: str | None = Field(default=None, description="the Celery worker running it")
    worker_alive: bool | None = Field(
        default=None, description="while running: whether that worker's heartbeat is live")
    worker_silent_s: float | None = Field(
        default=None, description="while running: seconds since that worker's last heartbeat "
                                  "(Redis's clock); a dead worker's grows until the shard is "
                                  "redone elsewhere")
    attempts: int = 0
    updated: float | None = None
    error: str | None = None


class StageProgress(BaseModel):
    """One stage of a job: its state, progress (summed over its shards) and shards."""

    stage: str
    status: Literal["queued", "running", "merging", "succeeded", "failed", "cancelled"] = "queued"
    processed: int = 0
    total: int = 0
    shards: list[ShardState] = Field(default_factory=list)
    started: float | None = None
    finished: float | None = None


class JobStatus(BaseModel):
    """What is known about a job."""

    id: str
    status: JobState
    pipeline: str | None = Field(default=None, description="the named pipeline, if any")
    stages: list[StageRequest]
    stage: str | None = None
    stage_index: int = 0
    processed: int = 0
    total: int = 0
    worker: str | None = Field(default=None, description="while an unsharded stage runs: the "
                                                         "Celery worker running it")
    worker_alive: bool | None = Field(default=None,
                                      description="whether that worker's heartbeat is live")
    worker_silent_s: float | None = Field(
        default=None, description="seconds since that worker's last heartbeat (Redis's clock)")
    error: str | None = None
    results: dict[str, Any] = Field(default_factory=dict)
    stage_progress: list[StageProgress] = Field(default_factory=list)
    created: float
    updated: float


@functools.lru_cache(maxsize=8)
def _client_for(url: str) -> redis.Redis:
    # One pool per URL and process (redis-py's pool is thread-safe and resets after a fork);
    # the timeouts make a hung Redis fail a call instead of holding its thread forever.
    return redis.Redis.from_url(redis_py_url(url), decode_responses=True,
                                socket_timeout=REDIS_TIMEOUT_S,
                                socket_connect_timeout=REDIS_TIMEOUT_S)


def _client(url: str | None = None) -> redis.Redis:
    return _client_for(url or redis_url())


def _record(client: redis.Redis, job_id: str) -> dict[str, str]:
    record = client.hgetall(JOB_KEY.format(job_id))
    if not record:
        raise JobNotFound(job_id)
    return record  # type: ignore[return-value]


def _stage_progress(client: redis.Redis, job_id: str, record: dict[str, str],
                    stages: list[dict[str, Any]]) -> list[StageProgress]:
    progress = []
    for position, step in enumerate(stages):
        state = json.loads(record.get(STAGE_FIELD.format(position)) or "{}")
        shards = [ShardState.model_validate_json(raw) for _, raw in sorted(
            client.hgetall(SHARDS_KEY.format(job_id, position)).items(),
            key=lambda item: int(item[0]))]
        if shards:
            state["processed"] = sum(shard.processed for shard in shards)
            state["total"] = sum(shard.total for shard in shards)
        progress.append(StageProgress(stage=step["stage"], shards=shards, **state))
    return progress


def _running_workers(record: dict[str, str], current: StageProgress | None
                     ) -> tuple[str | None, list[ShardState]]:
    """The worker running the current unsharded stage (if any), and the running shards."""
    if record.get("status") != "running" or current is None:
        return None, []
    running = [shard for shard in current.shards if shard.status == "running" and shard.worker]
    worker = record.get("worker") or None
    return (None if current.shards else worker), running


def _to_status(client: redis.Redis, record: dict[str, str]) -> JobStatus:
    stages = json.loads(record["stages"])
    progress = _stage_progress(client, record["id"], record, stages)
    position = int(record.get("stage_index", 0))
    current = progress[position] if position < len(progress) else None
    processed, total = int(record.get("processed", 0)), int(record.get("total", 0))
    if current is not None and current.shards:
        processed, total = current.processed, current.total
    worker, running = _running_workers(record, current)
    silence = worker_silence(client, [s.worker for s in running if s.worker]
                             + ([worker] if worker else []))
    for shard in running:
        shard.worker_alive, shard.worker_silent_s = silence[shard.worker or ""]
    alive, silent_s = silence.get(worker or "", (None, None))
    return JobStatus(
        id=record["id"],
        status=record["status"],  # type: ignore[arg-type]
        pipeline=record.get("pipeline") or None,
        stages=stages,
        stage=record.get("stage") or None,
        stage_index=position,
        processed=processed,
        total=total,
        worker=worker,
        worker_alive=alive,
        worker_silent_s=silent_s,
        error=record.get("error") or None,
        results=json.loads(record.get("results", "{}")),
        stage_progress=progress,
        created=float(record["created"]),
        updated=float(record["updated"]),
    )


def pipeline_stages(name: str, params: Mapping[str, Mapping[str, Any]] | None = None
                    ) -> list[StageRequest]:
    """The steps of the named pipeline: its stages with its defaults, the user's ``params``
    (``{stage: {KEY: value}}``) over them.

    Raises:
        KeyError: no pipeline of that name, or params for a stage the pipeline lacks.
    """
    if name not in PIPELINES:
        raise KeyError(f"unknown pipeline {name!r}; pipelines are {', '.join(PIPELINES)}")
    pipeline = PIPELINES[name]
    extra = sorted(set(params or {}) - set(pipeline.stages))
    if extra:
        raise KeyError(f"pipeline {name!r} has no stage {extra[0]!r}; its stages are "
                       f"{', '.join(pipeline.stages)}")
    steps = []
    for stage in pipeline.stages:
        given = {str(k).lower(): v for k, v in ((params or {}).get(stage) or {}).items()}
        defaults = {str(k).lower(): v for k, v in pipeline.defaults.get(stage, {}).items()}
        steps.append(StageRequest(stage=stage, params={**defaults, **given}))
    return steps


def check_job(stages: Sequence[StageRequest], root: DataRoot) -> None:
    """Refuse a job naming a key its stage does not have, or a path that leaves where it
    belongs (before it is queued).

    Raises:
        UnknownKey, PathRefused: the first problem; the message names the step, stage and key.
    """
    for position, step in enumerate(stages):
        stage_contract = contract(step.stage)
        try:
            stage_contract.check_keys(step.params)
        except UnknownKey as error:
            error.args = (f"stages[{position}] {error}",)
            raise
        refused = stage_contract.refused(step.params, root)
        if refused is not None:
            refused.args = (f"stages[{position}] {refused}",)
            raise refused


def submit_job(stages: Sequence[StageRequest], *, url: str | None = None,
               root: DataRoot | None = None, pipeline: str | None = None) -> str:
    """Queue ``stages`` as one job (a Celery chain of stage tasks) and return its id.

    Every key and path parameter is checked against the stage contracts first (``root``:
    default ``TIGERTRAP_DATA``); the stage tasks check the paths again when they run. In a
    job of several stages, a stage's inputs default to the earlier stages' outputs (the
    contracts' feeds).

    Raises:
        UnknownKey, PathRefused: a bad parameter; nothing is queued.
    """
    if not stages:
        raise ValueError("a job needs at least one stage")
    check_job(stages, root or DataRoot(load_settings(CoreSettings).tigertrap_data))
    client = _client(url)
    job_id = uuid.uuid4().hex
    task_ids = [uuid.uuid4().hex for _ in stages]
    now = time.time()
    client.hset(JOB_KEY.format(job_id), mapping={
        "id": job_id, "status": "queued", "stage": stages[0].stage, "stage_index": 0,
        "processed": 0, "total": 0, "error": "", "results": "{}", "pipeline": pipeline or "",
        "stages": json.dumps([s.model_dump() for s in stages]),
        "task_ids": json.dumps(task_ids), "created": now, "updated": now,
    })
    client.sadd(TASKS_KEY.format(job_id), *task_ids)
    client.zadd(JOB_INDEX, {job_id: now})
    app = celery_app(url)
    signatures = [
        app.signature(task_name(step.stage), args=(job_id, position, step.params),
                      immutable=True, queue=contract(step.stage).queue_name, task_id=task_id)
        for position, (step, task_id) in enumerate(zip(stages, task_ids, strict=True))
    ]
    chain(*signatures).apply_async()
    return job_id


def job_status(job_id: str, *, url: str | None = None) -> JobStatus:
    """The job's record. Raises :class:`JobNotFound`."""
    client = _client(url)
    return _to_status(client, _record(client, job_id))


def list_jobs(limit: int = 50, *, url: str | None = None) -> list[JobStatus]:
    """The newest ``limit`` jobs, newest first."""
    client = _client(url)
    statuses = []
    for job_id in client.zrevrange(JOB_INDEX, 0, max(limit, 1) - 1):
        record = client.hgetall(JOB_KEY.format(job_id))
        if record:
            statuses.append(_to_status(client, record))  # type: ignore[arg-type]
    return statuses


def job_task_ids(job_id: str, *, url: str | None = None) -> set[str]:
    """Every Celery task id the job has sent: its stages, shards and merges."""
    return set(_client(url).smembers(TASKS_KEY.format(job_id)))  # type: ignore[arg-type]


def cancel_job(job_id: str, *, url: str | None = None) -> JobStatus:
    """Cancel a job: its queued tasks (stages, shards, merges) are revoked, and running ones
    stop at their next progress report (any worker, any host: they read the record).

    A finished job is returned unchanged. Raises :class:`JobNotFound`.
    """
    client = _client(url)
    record = _record(client, job_id)
    if record["status"] not in FINISHED:
        client.hset(JOB_KEY.format(job_id),
                    mapping={"status": "cancelled", "updated": time.time()})
        celery_app(url).control.revoke(sorted(job_task_ids(job_id, url=url)))
    return job_status(job_id, url=url)
