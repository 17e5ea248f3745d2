"""The train Celery task: a real worker process on a real Redis, paths under the data root."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Workers, wait_for_job
from tests.train.conftest import CLASSES, INPUT_SIZE, TINY_MODEL
from tigertrap.core.contract import job_settings as confined
from tigertrap.core.paths import DataRoot, PathOutsideDataRoot
from tigertrap.train.config import TrainSettings

#: Safety limit, not synchronisation: the worker imports TensorFlow and trains.
JOB_TIMEOUT_S = 400


@pytest.fixture
def worker(workers: Workers) -> Workers:
    """A real `tigertrap worker train` process on this test's Redis and data root."""
    workers.start("train")
    return workers


def test_queued_job_trains_and_writes_the_bundle_under_models_classifiers(
        worker: Workers, data_root: Path, image_folders: Path) -> None:
    from tigertrap.core.bundle import verify_bundle
    from tigertrap.core.jobs import StageRequest, submit_job

    shutil.copytree(image_folders / "ds", data_root / "datasets" / "trial" / "snips")
    job = submit_job([StageRequest(stage="train", params={
        "DATA_DIR": "datasets/trial/snips", "CLASSES": CLASSES, "SAVEFILE": "trial",
        "OUTPUT_PATH": "runs/trial", "RECIPE": "terainet", "MODEL": TINY_MODEL,
        "WEIGHTS": "none", "INPUT_SIZE": INPUT_SIZE, "FROZ_EPOCH": 1,
        "CLASS_SAMPLES_DEFAULT": 16, "WANDB_MODE": "disabled"})])
    status = wait_for_job(job, worker, JOB_TIMEOUT_S)

    assert status.status == "succeeded", status.error
    result = status.results["train"]
    assert (result["bundle_dir"], result["run_dir"]) == ("models/classifiers/trial", "runs/trial")
    manifest, class_map = verify_bundle(data_root / result["bundle_dir"])
    assert list(class_map.names) == CLASSES and manifest.recipe == "terainet"


def test_job_paths_outside_the_data_root_are_refused(data_root: Path) -> None:
    with pytest.raises(PathOutsideDataRoot):
        confined("train", TrainSettings, {"DATA_DIR": "../elsewhere", "CLASSES": CLASSES},
                 DataRoot(data_root))
    with pytest.raises(PathOutsideDataRoot):
        confined("train", TrainSettings, {"DATA_DIR": "ds", "WEIGHTS": "/etc/weights.h5"},
                 DataRoot(data_root))
