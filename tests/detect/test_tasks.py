"""The detect Celery task: a real worker process on a real Redis, paths under the data root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.detect.conftest import FRAMES
from tigertrap.core.jobs import JobStatus
from tigertrap.core.md_results import read_md_results
from tigertrap.core.paths import DataRoot, PathOutsideDataRoot
from tigertrap.detect.tasks import _settings

#: Safety limits, not synchronisation: the worker imports torch and loads the model.
JOB_TIMEOUT_S = 180
POLL_S = 0.2


@pytest.fixture
def worker(redis_url: str, data_root: Path, tmp_path: Path):
    env = {**os.environ, "REDIS_URL": redis_url, "TIGERTRAP_DATA": str(data_root)}
    env.pop("PYTEST_CURRENT_TEST", None)
    log = (tmp_path / "worker.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "tigertrap.core", "worker", "detect"],
                               env=env, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        yield tmp_path / "worker.log"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def wait_for_job(job_id: str, log: Path) -> JobStatus:
    from tigertrap.core.jobs import FINISHED, job_status

    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        status = job_status(job_id)
        if status.status in FINISHED:
            return status
        time.sleep(POLL_S)
    pytest.fail(f"job {job_id} did not finish:\n{log.read_text(errors='replace')[-3000:]}")


def test_queued_job_detects_with_named_weights_from_the_models_folder(
        worker, data_root, fixtures_dir, tiny_checkpoint):
    from tigertrap.core.jobs import StageRequest, submit_job

    images = data_root / "datasets" / "trial" / "images"
    for name, file in FRAMES.items():
        (images / name).mkdir(parents=True)
        shutil.copyfile(fixtures_dir / "images" / name / file, images / name / file)
    models = data_root / "models" / "detectors"
    models.mkdir(parents=True)
    shutil.copyfile(tiny_checkpoint, models / "md_v5a.0.0.pt")

    job = submit_job([StageRequest(stage="detect", params={
        "INPUT_DIR": "datasets/trial/images", "MD_FILE": "../md.json"})])
    status = wait_for_job(job, worker)

    assert status.status == "succeeded", status.error
    result = status.results["detect"]
    assert result["md_file"] == "datasets/trial/md.json" and result["images"] == len(FRAMES)
    assert (status.processed, status.total) == (len(FRAMES), len(FRAMES))
    written = read_md_results(data_root / result["md_file"])
    assert written.info["detector"] == "md_v5a.0.0.pt"
    assert all(entry.file.startswith("images/") for entry in written.images)


@pytest.mark.parametrize("params", [
    {"INPUT_DIR": "../elsewhere"},
    {"INPUT_DIR": "/etc"},
    {"INPUT_DIR": "datasets/x", "MD_FILE": "../../../md.json"},
    {"INPUT_DIR": "datasets/x", "MD_MODEL": "../weights/custom.pt"},
], ids=["climbing-input", "absolute-input", "climbing-output", "climbing-weights"])
def test_job_paths_outside_the_data_root_are_refused(params, data_root):
    (data_root / "datasets" / "x").mkdir(parents=True)

    with pytest.raises(PathOutsideDataRoot):
        _settings(params, DataRoot(data_root))
