"""The job queue across real processes: Redis, `tigertrap worker`, the `tigertrap jobs` command.

The stage under test is snip (fast, deterministic, real); the queue behaviour is what is checked:
progress and results are visible, a task whose worker is killed with SIGKILL is redone to one
complete output, and cancelling stops the rest of a pipeline.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from PIL import Image

from tests.e2e.conftest import Workers, make_snip_dataset, wait_until
from tigertrap.core.jobs import StageRequest, job_status, submit_job
from tigertrap.core.paths import TEMP_SUFFIX

SNIP_PARAMS = {"INPUT_DIR": "datasets/e2e/images", "MD_FILE": "md.json", "SNIP_SIZE": 64}
TIMEOUT_S = 120


def snip_outputs(images_dir: Path) -> tuple[list[Path], list[dict[str, str]]]:
    snips_dir = images_dir / "snips"
    files = sorted(p for p in snips_dir.rglob("*.jpg"))
    with open(snips_dir / "snips.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return files, rows


def assert_one_complete_snip_output(images_dir: Path, images: int) -> None:
    files, rows = snip_outputs(images_dir)
    assert len(files) == 2 * images
    assert len(rows) == 2 * images
    assert len({tuple(sorted(row.items())) for row in rows}) == len(rows)  # no duplicate rows
    for path in files:
        with Image.open(path) as crop:
            crop.load()  # a half-written JPEG would raise here
            assert crop.size == (64, 64)
    leftovers = [p for p in (images_dir / "snips").rglob("*") if p.name.endswith(TEMP_SUFFIX)]
    assert leftovers == []


@pytest.mark.parametrize("pool", ["prefork", "solo"])
def test_job_runs_on_a_worker_with_visible_progress_and_result(
        workers: Workers, redis_url, data_root, fixtures_dir, pool):
    images_dir = make_snip_dataset(data_root, fixtures_dir, images=6)
    workers.start("snip", pool=pool)
    job_id = submit_job([StageRequest(stage="snip", params=SNIP_PARAMS)], url=redis_url)
    status = wait_until(lambda: (s := job_status(job_id)).status in ("succeeded", "failed") and s,
                        TIMEOUT_S, "the snip job to finish")
    assert status.status == "succeeded", status.error or workers.logs()
    assert (status.processed, status.total) == (6, 6)
    assert status.results["snip"], "the result names the outputs"
    assert_one_complete_snip_output(images_dir, 6)


def test_task_of_a_killed_worker_is_redelivered_and_completes_once(
        workers: Workers, redis_url, data_root, fixtures_dir):
    images = 300
    images_dir = make_snip_dataset(data_root, fixtures_dir, images=images)
    first = workers.start("snip")
    job_id = submit_job([StageRequest(stage="snip", params=SNIP_PARAMS)], url=redis_url)
    wait_until(lambda: job_status(job_id).processed > 0, TIMEOUT_S, "the first snips")
    workers.kill_hard(first)
    killed_at = job_status(job_id)
    assert killed_at.status == "running" and killed_at.processed < images

    workers.start("snip")
    status = wait_until(lambda: (s := job_status(job_id)).status in ("succeeded", "failed") and s,
                        TIMEOUT_S, "the redelivered task to finish")
    assert status.status == "succeeded", status.error or workers.logs()
    assert_one_complete_snip_output(images_dir, images)


def test_cancel_stops_the_running_stage_and_the_rest_of_the_pipeline(
        workers: Workers, redis_url, data_root, fixtures_dir):
    images = 300
    images_dir = make_snip_dataset(data_root, fixtures_dir, images=images)
    workers.start("snip")
    job_id = submit_job([StageRequest(stage="snip", params=SNIP_PARAMS),
                         StageRequest(stage="classify", params={})], url=redis_url)
    wait_until(lambda: job_status(job_id).processed > 0, TIMEOUT_S, "the snip stage to start")

    result = subprocess.run([sys.executable, "-m", "tigertrap.core", "jobs", "cancel", job_id],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "cancelled" in result.stdout

    client = redis.Redis.from_url(redis_url)
    # The snip task ends at its next progress report; the chain never sends classify.
    wait_until(lambda: client.hlen("unacked") == 0, TIMEOUT_S, "the snip task to stop")
    assert client.llen("classify") == 0
    status = job_status(job_id)
    assert status.status == "cancelled" and status.processed < images
    assert not (images_dir / "snips" / "snips.csv").exists()


def test_jobs_command_submits_and_reports_status(workers: Workers, redis_url, data_root,
                                                 fixtures_dir):
    make_snip_dataset(data_root, fixtures_dir, images=2)
    workers.start("snip")
    params = [f"snip.{key}={value}" for key, value in SNIP_PARAMS.items()]
    submit = subprocess.run(
        [sys.executable, "-m", "tigertrap.core", "jobs", "submit", "snip",
         *[arg for p in params for arg in ("-p", p)]],
        capture_output=True, text=True, check=False)
    assert submit.returncode == 0, submit.stderr
    job_id = submit.stdout.strip()
    status = subprocess.run([sys.executable, "-m", "tigertrap.core", "jobs", "status", job_id,
                             "--wait", "--json"], capture_output=True, text=True, timeout=TIMEOUT_S,
                            check=False)
    assert status.returncode == 0, status.stderr + workers.logs()
    assert '"status": "succeeded"' in status.stdout
    listing = subprocess.run([sys.executable, "-m", "tigertrap.core", "jobs", "list"],
                             capture_output=True, text=True, check=False)
    assert job_id in listing.stdout
