"""The detect Celery task: a real worker process on a real Redis, paths under the data root."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import Workers, wait_for_job
from tests.detect.conftest import FRAMES
from tigertrap.core.md_results import read_md_results
from tigertrap.core.paths import DataRoot, PathOutsideDataRoot
from tigertrap.detect.tasks import _settings

#: Safety limits, not synchronisation: the worker imports torch and loads the model.
JOB_TIMEOUT_S = 180


@pytest.fixture
def worker(workers: Workers) -> Workers:
    """A real `tigertrap worker detect` process on this test's Redis and data root."""
    workers.start("detect")
    return workers


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
    status = wait_for_job(job, worker, JOB_TIMEOUT_S)

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
