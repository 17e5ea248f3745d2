"""Fixtures of the detect tests: a tiny MegaDetector checkpoint and folders of real images."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import copy_fixture
from tests.detect.tiny_detector import build_tiny_md_checkpoint

#: Real camera-trap frames (fixtures/images/<class>/...), a mix of sizes; the tiny model finds
#: boxes on the first three and none on the last.
FRAMES = {
    "bear": "cameratrapai_american_black_bear.jpg",
    "leopard_cat": "camtrapR_StationA_PBE_StationA__2009-04-22__20-21-00(1).JPG",
    "civet": "camtrapR_StationC_VTA_StationC__2009-04-24__02-57-00(1).JPG",
    "tiger": "terainet_anno_1440.jpg",
}
TRUNCATED = "cameratrapai_african_elephants_truncated_file.jpg"
EXIF_ROTATED = "cameratrapai_african_elephants_with_exif_orientation.jpg"


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The random-weight YOLOv5n checkpoint (built once per session)."""
    return build_tiny_md_checkpoint(tmp_path_factory.mktemp("weights") / "tiny_md.pt")


@pytest.fixture
def camera_folder(tmp_path: Path, fixtures_dir: Path) -> Path:
    """A card's worth of images in sub-folders, with the usual casualties.

    ``site_a/bear/``, ``site_a/leopard_cat/``, ``site_b/civet/``, ``site_b/tiger/``;
    ``broken/``: a truncated JPEG, an EXIF-rotated JPEG, a 0-byte ``.jpg`` and an HTML page
    saved as ``.jpg``; plus ``notes.txt`` (not an image file name, so not listed).
    """
    folder = tmp_path / "card"
    for (name, file), site in zip(FRAMES.items(), ("site_a", "site_a", "site_b", "site_b"),
                                  strict=True):
        copy_fixture(fixtures_dir / "images" / name / file, folder / site / name)
    broken = folder / "broken"
    copy_fixture(fixtures_dir / "edge_cases" / TRUNCATED, broken)
    copy_fixture(fixtures_dir / "edge_cases" / EXIF_ROTATED, broken)
    (broken / "zero_bytes.jpg").write_bytes(b"")
    (broken / "error_page.jpg").write_text("<html><body>403 Forbidden</body></html>")
    (folder / "notes.txt").write_text("battery changed 2024-03-01\n")
    return folder


@pytest.fixture
def weights_as(tiny_checkpoint: Path, tmp_path: Path):
    """Copy the tiny checkpoint into a models folder under a given file name."""

    def place(file_name: str, models_dir: Path | None = None) -> Path:
        target_dir = models_dir or tmp_path / "models"
        target_dir.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copyfile(tiny_checkpoint, target_dir / file_name))

    return place
