"""The classify Celery task on a real worker process and a real Redis."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import redis

from tests.classify.frames import write_frame, write_md
from tests.conftest import Workers
from tigertrap.core.jobs import JOB_KEY, StageRequest, job_status, submit_job
from tigertrap.core.queue import celery_app

TIMEOUT_S = 120


@pytest.fixture
def classify_worker(workers: Workers) -> Workers:
    """A real `tigertrap worker classify` process on this test's Redis and data root."""
    workers.start("classify")
    return workers


def test_classify_job_runs_on_the_classify_queue_with_data_root_paths(
        classify_worker: Workers, redis_url: str, data_root: Path,
        bundle_dir: Path) -> None:
    dataset = data_root / "datasets" / "cam"
    boxes = write_frame(dataset / "images" / "f.png", [("tiger", 20, 20)])
    write_md(dataset / "md.json", {"images/f.png": [(boxes[0], 0.9)]})
    shutil.copytree(bundle_dir, data_root / "models" / "classifiers" / "tiny")
    params = {"MD_FILE": "datasets/cam/md.json", "MODEL": "models/classifiers/tiny"}
    job_id = submit_job([StageRequest(stage="classify", params=params)], url=redis_url)
    task_id = json.loads(redis.Redis.from_url(redis_url).hget(JOB_KEY.format(job_id),
                                                               "task_ids"))[0]
    result = celery_app(redis_url).AsyncResult(task_id).get(timeout=TIMEOUT_S)
    assert result["md_file"] == "datasets/cam/md_classified.json"
    assert result["predictions_csv"] == "datasets/cam/predictions.csv"
    assert result["classified"] == 1
    status = job_status(job_id, url=redis_url)
    assert status.status == "succeeded"
    assert (status.processed, status.total) == (1, 1)
