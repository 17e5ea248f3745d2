"""Job records on a real Redis server: submit, status, list, cancel (no worker running)."""

from __future__ import annotations

import json

import pytest
import redis
from pydantic import ValidationError

from tigertrap.core.jobs import (
    JobNotFound,
    StageRequest,
    cancel_job,
    job_status,
    list_jobs,
    submit_job,
)


def queued_messages(url: str, queue: str) -> list[dict]:
    return [json.loads(m) for m in redis.Redis.from_url(url).lrange(queue, 0, -1)]


def test_submitted_job_is_queued_on_its_first_stage_queue(redis_url):
    job_id = submit_job([StageRequest(stage="detect", params={"INPUT_DIR": "a"}),
                         StageRequest(stage="snip")], url=redis_url)
    status = job_status(job_id, url=redis_url)
    assert status.status == "queued" and status.stage == "detect"
    assert [s.stage for s in status.stages] == ["detect", "snip"]
    messages = queued_messages(redis_url, "detect")
    assert len(messages) == 1
    assert messages[0]["headers"]["task"] == "tigertrap.detect"
    assert queued_messages(redis_url, "snip") == []  # the chain sends snip after detect


def test_jobs_are_listed_newest_first(redis_url):
    first = submit_job([StageRequest(stage="snip")], url=redis_url)
    second = submit_job([StageRequest(stage="train")], url=redis_url)
    assert [s.id for s in list_jobs(url=redis_url)] == [second, first]


def test_cancel_marks_the_job_and_revokes_its_tasks(redis_url):
    job_id = submit_job([StageRequest(stage="snip")], url=redis_url)
    assert cancel_job(job_id, url=redis_url).status == "cancelled"
    assert job_status(job_id, url=redis_url).status == "cancelled"


def test_unknown_job_raises(redis_url):
    with pytest.raises(JobNotFound):
        job_status("nope", url=redis_url)


def test_unknown_stage_is_refused_naming_the_stages():
    with pytest.raises(ValidationError, match="unknown stage 'sniff'.*download, detect"):
        StageRequest(stage="sniff")
