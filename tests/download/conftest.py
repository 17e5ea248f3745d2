"""Fixtures of the download tests: a loopback image server and LILA-style metadata files."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.download.image_server import ImageServer

#: LILA's 32 columns (newer files add ``subgenus`` after ``genus``).
LILA_COLUMNS = [
    "dataset_name", "url_gcp", "url_aws", "url_azure", "image_id", "sequence_id", "location_id",
    "frame_num", "original_label", "scientific_name", "common_name", "datetime",
    "annotation_level", "kingdom", "phylum", "subphylum", "superclass", "class", "subclass",
    "infraclass", "superorder", "order", "suborder", "infraorder", "superfamily", "family",
    "subfamily", "tribe", "genus", "species", "subspecies", "variety",
]


@pytest.fixture(scope="session")
def served_images(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture images (small ones, at most 700 kB), flattened into one folder."""
    folder = tmp_path_factory.mktemp("served")
    for image in sorted((fixtures_dir / "images").rglob("*")):
        if image.is_file() and image.stat().st_size <= 700_000:
            shutil.copy2(image, folder / image.name.replace("(", "_").replace(")", "_"))
    return folder


@pytest.fixture
def image_server(served_images: Path) -> Iterator[ImageServer]:
    with ImageServer(served_images) as server:
        yield server


def lila_row(**values: str) -> dict[str, str]:
    """A metadata row with every column, defaults for a WCS tiger frame."""
    row = dict.fromkeys(LILA_COLUMNS, "")
    row.update(dataset_name="WCS Camera Traps", common_name="tiger",
               scientific_name="panthera tigris", kingdom="animalia", family="felidae",
               datetime="06-03-2003 10:14:00", annotation_level="sequence", frame_num="1")
    row.update(values)
    return row


def write_metadata(path: Path, rows: list[dict[str, str]],
                   columns: list[str] | None = None) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or LILA_COLUMNS,
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def served_rows(served_images: Path, image_server: ImageServer
                ) -> Callable[[str], list[dict[str, str]]]:
    """Metadata rows (one per served image, each its own location) whose three mirrors all
    point at ``mode`` endpoints of the server."""

    def make(mode: str = "img") -> list[dict[str, str]]:
        rows = []
        for number, image in enumerate(sorted(served_images.iterdir())):
            url = image_server.url(mode, image.name)
            rows.append(lila_row(url_gcp=url, url_aws=url, url_azure=url,
                                 image_id=f"WCS Camera Traps : img{number:03d}",
                                 sequence_id=f"WCS Camera Traps : seq{number:03d}",
                                 location_id=f"WCS Camera Traps : loc{number:03d}"))
        return rows

    return make
