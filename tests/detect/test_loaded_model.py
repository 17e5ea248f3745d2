"""A detect process loads MegaDetector once and reuses it, never serving a stale model.

Loads are counted by :func:`tigertrap.detect.detector.model_loads` in this process and by the
``loading MegaDetector weights`` log line in a real worker's log.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import Workers, copy_fixture, wait_for_job
from tests.detect.conftest import FRAMES
from tigertrap.core.md_results import read_md_results
from tigertrap.detect.batch import run_detect
from tigertrap.detect.config import DetectSettings
from tigertrap.detect.detector import clear_loaded_models, model_loads

LOAD_LINE = "loading MegaDetector weights"
#: A safety limit, not synchronisation: the worker imports torch and loads the model.
JOB_TIMEOUT_S = 180


@pytest.fixture
def frames(tmp_path: Path, fixtures_dir: Path) -> Path:
    """Two real frames in a folder."""
    folder = tmp_path / "frames"
    for name in ("bear", "tiger"):
        copy_fixture(fixtures_dir / "images" / name / FRAMES[name], folder)
    return folder


@pytest.fixture(autouse=True)
def no_model_kept() -> None:
    """Each test starts with nothing loaded in this process."""
    clear_loaded_models()


def detect(folder: Path, weights: Path, **values: object) -> Path:
    """Run detect over ``folder`` from scratch; the written MD file."""
    settings = DetectSettings(input_dir=folder, md_model=str(weights), ncores=1, overwrite=True,
                              device="cpu", **values)
    return run_detect(settings).md_file


def boxes(md_file: Path) -> list[list[tuple]]:
    return [[(d.category, d.bbox) for d in image.detections]
            for image in read_md_results(md_file).images]


def test_consecutive_runs_load_the_model_once(frames, tiny_checkpoint):
    before = model_loads()
    first = boxes(detect(frames, tiny_checkpoint))
    second = boxes(detect(frames, tiny_checkpoint))

    assert model_loads() - before == 1
    assert first == second and any(first)


def test_other_weights_load_another_model(frames, tiny_checkpoint, weights_as):
    other = weights_as("other.pt")
    before = model_loads()
    detect(frames, tiny_checkpoint)
    detect(frames, other)
    detect(frames, tiny_checkpoint)  # both kept: the first is not loaded again

    assert model_loads() - before == 2


def test_weights_replaced_in_place_are_loaded_again(frames, tiny_checkpoint, weights_as,
                                                     tmp_path):
    weights = weights_as("md_v5a.0.0.pt")
    detect(frames, weights)
    before = model_loads()
    replacement = tmp_path / "new.pt"
    shutil.copyfile(tiny_checkpoint, replacement)
    os.replace(replacement, weights)  # same name, new file (as an upgrade would do)
    detect(frames, weights)

    assert model_loads() - before == 1


def test_keep_model_false_loads_the_model_for_every_run(frames, tiny_checkpoint):
    before = model_loads()
    detect(frames, tiny_checkpoint, keep_model=False)
    detect(frames, tiny_checkpoint, keep_model=False)

    assert model_loads() - before == 2


def test_two_queued_jobs_on_one_worker_load_the_model_once(workers: Workers, data_root,
                                                           fixtures_dir, tiny_checkpoint):
    from tigertrap.core.jobs import StageRequest, submit_job

    for job_name in ("first", "second"):
        copy_fixture(fixtures_dir / "images" / "bear" / FRAMES["bear"],
                     data_root / "datasets" / job_name / "images")
    models = data_root / "models" / "detectors"
    models.mkdir(parents=True)
    shutil.copyfile(tiny_checkpoint, models / "md_v5a.0.0.pt")
    workers.start("detect")

    for job_name in ("first", "second"):
        job = submit_job([StageRequest(stage="detect", params={
            "INPUT_DIR": f"datasets/{job_name}/images", "DEVICE": "cpu"})])
        status = wait_for_job(job, workers, JOB_TIMEOUT_S)
        assert status.status == "succeeded", status.error

    log = "".join(p.read_text(errors="replace") for p in workers.log_dir.glob("worker-*.log"))
    assert log.count(LOAD_LINE) == 1, workers.logs()
