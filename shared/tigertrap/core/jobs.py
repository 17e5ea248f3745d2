"""Jobs: a chain of stage tasks with a record in Redis that anyone can read.

A job is one or more stages run in order (``[{"stage": "detect", "params": {...}}, ...]``).
:func:`submit_job` stores a record and sends a Celery chain by task name; each stage task keeps
the record current (status, stage, processed/total, result or error) through :func:`run_stage`.
:func:`job_status`, :func:`cancel_job` and :func:`list_jobs` are what the API and the
``tigertrap jobs`` command call.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal

import redis
from celery import chain
from celery.exceptions import Ignore
from pydantic import BaseModel, Field, field_validator

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.contract import contract
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import STAGES, StageFunction, celery_app, redis_url, task_name

__all__ = [
    "JobCancelled",
    "JobNotFound",
    "JobStatus",
    "StageRequest",
    "cancel_job",
    "check_job_paths",
    "job_status",
    "list_jobs",
    "run_stage",
    "submit_job",
]

JOB_KEY = "tigertrap:job:{}"
JOB_INDEX = "tigertrap:jobs"
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
        if value not in STAGES:
            raise ValueError(f"unknown stage {value!r}; stages are {', '.join(STAGES)}")
        return value


class JobStatus(BaseModel):
    """What is known about a job."""

    id: str
    status: JobState
    stages: list[StageRequest]
    stage: str | None = None
    stage_index: int = 0
    processed: int = 0
    total: int = 0
    error: str | None = None
    results: dict[str, Any] = Field(default_factory=dict)
    created: float
    updated: float


@functools.lru_cache(maxsize=8)
def _client_for(url: str) -> redis.Redis:
    # One pool per URL and process (redis-py's pool is thread-safe and resets after a fork);
    # the timeouts make a hung Redis fail a call instead of holding its thread forever.
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=REDIS_TIMEOUT_S,
                                socket_connect_timeout=REDIS_TIMEOUT_S)


def _client(url: str | None = None) -> redis.Redis:
    return _client_for(url or redis_url())


def _record(client: redis.Redis, job_id: str) -> dict[str, str]:
    record = client.hgetall(JOB_KEY.format(job_id))
    if not record:
        raise JobNotFound(job_id)
    return record  # type: ignore[return-value]


def _to_status(record: dict[str, str]) -> JobStatus:
    return JobStatus(
        id=record["id"],
        status=record["status"],  # type: ignore[arg-type]
        stages=json.loads(record["stages"]),
        stage=record.get("stage") or None,
        stage_index=int(record.get("stage_index", 0)),
        processed=int(record.get("processed", 0)),
        total=int(record.get("total", 0)),
        error=record.get("error") or None,
        results=json.loads(record.get("results", "{}")),
        created=float(record["created"]),
        updated=float(record["updated"]),
    )


def check_job_paths(stages: Sequence[StageRequest], root: DataRoot) -> None:
    """Refuse a job whose path parameters leave where they belong (before it is queued).

    Raises:
        PathRefused: the first refused parameter; its message names the step, stage and key.
    """
    for position, step in enumerate(stages):
        refused = contract(step.stage).refused(step.params, root)
        if refused is not None:
            refused.args = (f"stages[{position}] {refused}",)
            raise refused


def submit_job(stages: Sequence[StageRequest], *, url: str | None = None,
               root: DataRoot | None = None) -> str:
    """Queue ``stages`` as one job and return its id.

    Every path parameter is checked against the stage contracts first (``root``: default
    ``TIGERTRAP_DATA``); the stage tasks check again when they run.

    Raises:
        PathRefused: a path parameter leaves where it belongs; nothing is queued.
    """
    if not stages:
        raise ValueError("a job needs at least one stage")
    check_job_paths(stages, root or DataRoot(load_settings(CoreSettings).tigertrap_data))
    client = _client(url)
    job_id = uuid.uuid4().hex
    task_ids = [uuid.uuid4().hex for _ in stages]
    now = time.time()
    client.hset(JOB_KEY.format(job_id), mapping={
        "id": job_id, "status": "queued", "stage": stages[0].stage, "stage_index": 0,
        "processed": 0, "total": 0, "error": "", "results": "{}",
        "stages": json.dumps([s.model_dump() for s in stages]),
        "task_ids": json.dumps(task_ids), "created": now, "updated": now,
    })
    client.zadd(JOB_INDEX, {job_id: now})
    app = celery_app(url)
    signatures = [
        app.signature(task_name(step.stage), args=(job_id, position, step.params),
                      immutable=True, queue=step.stage, task_id=task_id)
        for position, (step, task_id) in enumerate(zip(stages, task_ids, strict=True))
    ]
    chain(*signatures).apply_async()
    return job_id


def job_status(job_id: str, *, url: str | None = None) -> JobStatus:
    """The job's record. Raises :class:`JobNotFound`."""
    return _to_status(_record(_client(url), job_id))


def list_jobs(limit: int = 50, *, url: str | None = None) -> list[JobStatus]:
    """The newest ``limit`` jobs, newest first."""
    client = _client(url)
    statuses = []
    for job_id in client.zrevrange(JOB_INDEX, 0, max(limit, 1) - 1):
        record = client.hgetall(JOB_KEY.format(job_id))
        if record:
            statuses.append(_to_status(record))  # type: ignore[arg-type]
    return statuses


def cancel_job(job_id: str, *, url: str | None = None) -> JobStatus:
    """Cancel a job: its queued tasks are revoked, a running stage stops at its next report.

    A finished job is returned unchanged. Raises :class:`JobNotFound`.
    """
    client = _client(url)
    record = _record(client, job_id)
    if record["status"] not in FINISHED:
        client.hset(JOB_KEY.format(job_id),
                    mapping={"status": "cancelled", "updated": time.time()})
        celery_app(url).control.revoke(json.loads(record["task_ids"]))
    return job_status(job_id, url=url)


class _Reporter:
    """The ``progress`` callable handed to a stage function."""

    def __init__(self, client: redis.Redis, job_id: str) -> None:
        self.client = client
        self.key = JOB_KEY.format(job_id)
        self.last = 0.0

    def __call__(self, processed: int, total: int) -> None:
        now = time.monotonic()
        if processed not in (0, total) and now - self.last < PROGRESS_INTERVAL_S:
            return
        self.last = now
        if self.client.hget(self.key, "status") == "cancelled":
            raise JobCancelled(self.key)
        self.client.hset(self.key, mapping={"processed": processed, "total": total,
                                            "updated": time.time()})


def run_stage(job_id: str, position: int, stage: str, params: dict[str, Any],
              func: StageFunction, *, worker_pid: int | None = None) -> dict[str, Any]:
    """Run one stage of a job and keep its record current (called by every stage task)."""
    client = _client(celery_app().conf.broker_url)
    key = JOB_KEY.format(job_id)
    status = client.hget(key, "status")
    if status is None or status == "cancelled":
        raise Ignore()
    client.hset(key, mapping={"status": "running", "stage": stage, "stage_index": position,
                              "processed": 0, "total": 0, "worker_pid": worker_pid or 0,
                              "updated": time.time()})
    try:
        result = func(params, _Reporter(client, job_id))
    except JobCancelled:
        raise Ignore() from None
    except Exception as error:
        client.hset(key, mapping={"status": "failed", "error": f"{stage}: {error}",
                                  "updated": time.time()})
        raise
    results = json.loads(client.hget(key, "results") or "{}")
    results[stage] = result
    last = position == len(json.loads(client.hget(key, "stages") or "[]")) - 1
    update: dict[str, Any] = {"results": json.dumps(results), "updated": time.time()}
    if last and client.hget(key, "status") != "cancelled":
        update["status"] = "succeeded"
    client.hset(key, mapping=update)
    return result

