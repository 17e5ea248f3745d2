"""The train Celery task: a real worker process on a real Redis, paths under the data root."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.train.conftest import CLASSES, INPUT_SIZE, TINY_MODEL
from tigertrap.core.jobs import JobStatus
from tigertrap.core.paths import DataRoot, PathOutsideDataRoot
from tigertrap.train.tasks import job_settings

#: Safety limit, not synchronisation: the worker imports TensorFlow and trains.
JOB_TIMEOUT_S = 400
POLL_S = 0.5


@pytest.fixture
def worker(redis_url: str, data_root: Path, tmp_path: Path) -> Iterator[Path]:
    env = {**os.environ, "REDIS_URL": redis_url, "TIGERTRAP_DATA": str(data_root)}
    env.pop("PYTEST_CURRENT_TEST", None)
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "tigertrap.core", "worker", "train"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield log_path
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _wait_for_job(job_id: str, log: Path) -> JobStatus:
    from tigertrap.core.jobs import FINISHED, job_status

    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        status = job_status(job_id)
        if status.status in FINISHED:
            return status
        time.sleep(POLL_S)
    pytest.fail(f"job {job_id} did not finish:\n{log.read_text(errors='replace')[-3000:]}")


def test_queued_job_trains_and_writes_the_bundle_under_models_classifiers(
        worker: Path, data_root: Path, image_folders: Path) -> None:
    from tigertrap.core.bundle import verify_bundle
    from tigertrap.core.jobs import StageRequest, submit_job

    shutil.copytree(image_folders / "ds", data_root / "datasets" / "trial" / "snips")
    job = submit_job([StageRequest(stage="train", params={
        "DATA_DIR": "datasets/trial/snips", "CLASSES": CLASSES, "SAVEFILE": "trial",
        "OUTPUT_PATH": "runs/trial", "RECIPE": "terainet", "MODEL": TINY_MODEL,
        "WEIGHTS": "none", "INPUT_SIZE": INPUT_SIZE, "FROZ_EPOCH": 1,
        "CLASS_SAMPLES_DEFAULT": 16, "WANDB_MODE": "disabled"})])
    status = _wait_for_job(job, worker)

    assert status.status == "succeeded", status.error
    result = status.results["train"]
    assert (result["bundle_dir"], result["run_dir"]) == ("models/classifiers/trial", "runs/trial")
    manifest, class_map = verify_bundle(data_root / result["bundle_dir"])
    assert list(class_map.names) == CLASSES and manifest.recipe == "terainet"


def test_job_paths_outside_the_data_root_are_refused(data_root: Path) -> None:
    with pytest.raises(PathOutsideDataRoot):
        job_settings({"DATA_DIR": "../elsewhere", "CLASSES": CLASSES}, DataRoot(data_root))
    with pytest.raises(PathOutsideDataRoot):
        job_settings({"DATA_DIR": "ds", "WEIGHTS": "/etc/weights.h5"}, DataRoot(data_root))
