"""The Celery task on a real worker process and a real Redis."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from tests.conftest import Workers
from tests.download.conftest import write_metadata
from tigertrap.core.jobs import JOB_KEY, StageRequest, job_status, submit_job
from tigertrap.core.queue import celery_app

TIMEOUT_S = 120


@pytest.fixture
def download_worker(workers: Workers) -> Workers:
    """A real `tigertrap worker download` process on this test's Redis and data root."""
    workers.start("download")
    return workers


def test_download_job_runs_on_the_download_queue_with_data_root_paths(
        download_worker: Workers, redis_url: str, data_root: Path,
        tmp_path: Path, served_rows: Callable[[str], list[dict[str, str]]]) -> None:
    inputs = data_root / "inputs"
    inputs.mkdir()
    write_metadata(inputs / "meta.csv", served_rows("img")[:5])
    (inputs / "spec.yaml").write_text(
        "classes:\n  tiger:\n    rules:\n      - {common_name: tiger}\n", encoding="utf-8")
    params = {"METADATA": "inputs/meta.csv", "CLASS_SPEC": "inputs/spec.yaml",
              "DATASET_NAME": "q", "RETRIES": 0}
    job_id = submit_job([StageRequest(stage="download", params=params)], url=redis_url)
    task_id = json.loads(redis.Redis.from_url(redis_url).hget(JOB_KEY.format(job_id),
                                                               "task_ids"))[0]
    result = celery_app(redis_url).AsyncResult(task_id).get(timeout=TIMEOUT_S)
    assert result["lila"]["complete"] == 5
    assert result["lila"]["manifest"] == "datasets/q/manifest.csv"
    status = job_status(job_id, url=redis_url)
    assert status.status == "succeeded"
    assert (status.processed, status.total) == (5, 5)
    assert len(list((data_root / "datasets" / "q" / "images").rglob("*.jpg"))) == 5
