"""End-to-end fixtures: workers that take over a dead worker's task at once, and a dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Workers, wait_until, worker_env
from tigertrap.core.md_results import Detection, ImageResult, MDResults, write_md_results

__all__ = ["Workers", "make_snip_dataset", "wait_until"]


@pytest.fixture
def workers(redis_url: str, data_root: Path, tmp_path: Path) -> Iterator[Workers]:
    # A task whose worker vanished is handed out again after this many seconds; short, so a
    # new worker restores it when it starts (the shipped default is 1 hour).
    pool = Workers(worker_env(redis_url, data_root, TIGERTRAP_VISIBILITY_TIMEOUT="1"), tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def make_snip_dataset(data_root: Path, fixtures_dir: Path, images: int) -> Path:
    """A dataset of ``images`` real camera-trap frames, each with two animal detections."""
    source = (fixtures_dir / "md_outputs" / "microsoft_CameraTraps_test_images"
              / "wcs_camera_traps_animals_0245_1477.jpg").read_bytes()
    folder = data_root / "datasets" / "e2e" / "images"
    (folder / "cam1").mkdir(parents=True)
    entries = []
    for index in range(images):
        name = f"cam1/frame_{index:04d}.jpg"
        (folder / name).write_bytes(source)
        entries.append(ImageResult(file=name, detections=[
            Detection(category="1", conf=0.9, bbox=(0.30, 0.40, 0.20, 0.25)),
            Detection(category="1", conf=0.6, bbox=(0.05, 0.10, 0.10, 0.15)),
        ]))
    write_md_results(MDResults(info={"detector": "md_v5a.0.0.pt"}, images=entries),
                     folder / "md.json")
    return folder
