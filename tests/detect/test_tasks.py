"""The detect Celery task: a real worker process on a real Redis, paths under the data root."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import Workers, wait_for_job
from tests.detect.conftest import FRAMES
from tigertrap.core.contract import job_settings
from tigertrap.core.md_results import read_md_results
from tigertrap.core.paths import DataRoot, PathOutsideDataRoot
from tigertrap.detect.config import DetectSettings

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
        job_settings("detect", DetectSettings, params, DataRoot(data_root))


def test_a_checkpoint_path_turned_into_a_symlink_after_submission_is_refused_by_the_worker(
        workers, data_root, fixtures_dir, tiny_checkpoint, tmp_path):
    """The issue's repro: the checkpoint is unlinked after a run, so a CHECKPOINT_FILE that
    leads outside deleted the file there. The worker checks again, after symlinks change."""
    from tigertrap.core.jobs import StageRequest, submit_job

    images = data_root / "datasets" / "swap" / "images"
    images.mkdir(parents=True)
    shutil.copyfile(fixtures_dir / "images" / "tiger" / FRAMES["tiger"], images / "t.jpg")
    (images / "lnk").mkdir()
    victim = tmp_path / "outside" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("must survive")
    models = data_root / "models" / "detectors"
    models.mkdir(parents=True)
    shutil.copyfile(tiny_checkpoint, models / "tiny.pt")

    job = submit_job([StageRequest(stage="detect", params={
        "INPUT_DIR": "datasets/swap/images", "MD_MODEL": "models/detectors/tiny.pt",
        "CHECKPOINT_FILE": "lnk/victim.txt"})])
    (images / "lnk").rmdir()
    (images / "lnk").symlink_to(victim.parent, target_is_directory=True)
    workers.start("detect")
    status = wait_for_job(job, workers, JOB_TIMEOUT_S)

    assert status.status == "failed"
    assert "detect.CHECKPOINT_FILE" in status.error and "outside the data root" in status.error
    assert victim.read_text() == "must survive"
    assert not (images / "md.json").exists()
