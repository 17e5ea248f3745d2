"""The snip Celery task: a real worker process on a real Redis, paths under the data root."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import Workers, wait_for_job
from tigertrap.core.contract import job_settings as confined
from tigertrap.core.jobs import StageRequest, submit_job
from tigertrap.core.md_results import Detection, ImageResult, MDResults, write_md_results
from tigertrap.core.paths import DataRoot, PathOutsideDataRoot
from tigertrap.snip.config import SnipSettings

FRAME = ("md_outputs/microsoft_CameraTraps_test_images/"
         "wcs_camera_traps_animals_0245_1477.jpg")
#: Safety limit, not synchronisation.
JOB_TIMEOUT_S = 120


@pytest.fixture
def worker(workers: Workers) -> Workers:
    """A real `tigertrap worker snip` process on this test's Redis and data root."""
    workers.start("snip")
    return workers


def make_dataset(data_root: Path, fixtures_dir: Path, images: int) -> Path:
    folder = data_root / "datasets" / "x" / "images"
    (folder / "cam").mkdir(parents=True)
    box = Detection(category="1", conf=0.9, bbox=(0.3, 0.4, 0.2, 0.25))
    for index in range(images):
        shutil.copy(fixtures_dir / FRAME, folder / "cam" / f"{index}.jpg")
    write_md_results(MDResults(images=[ImageResult(file=f"cam/{index}.jpg", detections=[box])
                                       for index in range(images)]), folder / "md.json")
    return folder


def test_queued_job_snips_with_paths_relative_to_the_data_root(
        worker: Workers, data_root: Path, fixtures_dir: Path) -> None:
    folder = make_dataset(data_root, fixtures_dir, images=3)
    job = submit_job([StageRequest(stage="snip", params={
        "INPUT_DIR": "datasets/x/images", "MD_FILE": "md.json", "SNIP_SIZE": 48})])
    status = wait_for_job(job, worker, JOB_TIMEOUT_S)

    assert status.status == "succeeded", status.error
    assert (status.processed, status.total) == (3, 3)
    result = status.results["snip"]
    assert (result["snips_dir"], result["snips_csv"]) == (
        "datasets/x/images/snips", "datasets/x/images/snips/snips.csv")
    assert (result["images"], result["crops"], result["written"], result["failures"]) == (
        3, 3, 3, 0)
    assert sorted(p.name for p in (folder / "snips" / "cam").iterdir()) == [
        "0-0.jpg", "1-0.jpg", "2-0.jpg"]


@pytest.mark.parametrize("params", [
    {"INPUT_DIR": "../elsewhere"},
    {"INPUT_DIR": "/etc"},
    {"INPUT_DIR": "datasets/x", "MD_FILE": "../../../outside.json"},
    {"INPUT_DIR": "datasets/x", "SNIP_DIR": "/tmp/snips"},
    {"INPUT_DIR": "datasets/x", "MANIFEST": "../manifest.csv"},
])
def test_job_paths_outside_the_data_root_are_refused(data_root: Path, params) -> None:
    with pytest.raises(PathOutsideDataRoot):
        confined("snip", SnipSettings, params, DataRoot(data_root))


def test_job_without_input_dir_reads_the_data_root(data_root: Path) -> None:
    settings = confined("snip", SnipSettings, {"MD_FILE": "md.json"}, DataRoot(data_root))
    assert settings.md_path == data_root.resolve() / "md.json"


def test_job_does_not_read_images_outside_the_data_root(data_root: Path, fixtures_dir: Path,
                                                         tmp_path: Path) -> None:
    from tigertrap.snip.snip import run_snip

    shutil.copy(fixtures_dir / FRAME, tmp_path / "secret.jpg")
    folder = data_root / "datasets" / "x"
    folder.mkdir(parents=True)
    box = Detection(category="1", conf=0.9, bbox=(0.1, 0.1, 0.4, 0.4))
    write_md_results(MDResults(images=[ImageResult(file=str(tmp_path / "secret.jpg"),
                                                   detections=[box])]), folder / "md.json")
    root = DataRoot(data_root)
    summary = run_snip(confined("snip", SnipSettings, {"INPUT_DIR": "datasets/x"}, root),
                       image_root=root.root)
    assert summary.failures == [(str(tmp_path / "secret.jpg"), "image outside the data root")]
    assert summary.written == 0
