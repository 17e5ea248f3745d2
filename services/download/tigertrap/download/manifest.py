"""The manifest: one CSV row per image of a dataset, from selection to download result.

``datasets/<name>/manifest.csv`` says for each image its class, split, LILA dataset, location,
sequence, datetime, source URLs, path (relative to the dataset folder:
``images/<split>/<class>/<file>``), download status, size and sha256. A re-run reads it to skip
what is complete; the split report is computed from it.
"""

from __future__ import annotations

import csv
import io
import os
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from tigertrap.core.paths import atomic_write_text

__all__ = [
    "COMPLETE",
    "EXISTING",
    "FAILED",
    "IMAGES_DIR",
    "LOCAL",
    "MANIFEST_FILE",
    "OK",
    "PENDING",
    "ManifestRow",
    "image_file_name",
    "image_path",
    "read_manifest",
    "write_manifest",
]

MANIFEST_FILE = "manifest.csv"
IMAGES_DIR = "images"
#: Download states: not tried yet, downloaded, found on disk, copied from a local mirror, failed.
PENDING, OK, EXISTING, LOCAL, FAILED = "pending", "ok", "existing", "local", "failed"
COMPLETE = frozenset({OK, EXISTING, LOCAL})
DEFAULT_EXTENSION = ".jpg"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class ManifestRow:
    """One image. ``bytes`` and ``sha256`` are empty until the file is complete."""

    source: str
    class_name: str
    split: str
    dataset: str
    path: str
    rule: str = ""
    location: str = ""
    sequence: str = ""
    datetime: str = ""
    image_id: str = ""
    url_gcp: str = ""
    url_aws: str = ""
    url_azure: str = ""
    status: str = PENDING
    bytes: str = ""
    sha256: str = ""
    error: str = ""

    @property
    def complete(self) -> bool:
        return self.status in COMPLETE


_COLUMNS = [f.name for f in fields(ManifestRow)]
#: The CSV header: ``class`` rather than the Python-safe ``class_name``.
MANIFEST_COLUMNS = ["class" if name == "class_name" else name for name in _COLUMNS]


def _slug(text: str) -> str:
    return _UNSAFE.sub("_", text.strip()).strip("_") or "image"


def image_file_name(dataset: str, image_id: str, url: str) -> str:
    """A file name unique across LILA: dataset and image id (without the dataset prefix), with
    the URL's extension; e.g. ``wcs_camera_traps_d432b35c-92d4.jpg``."""
    local_id = image_id.rpartition(" : ")[2] or PurePosixPath(urlsplit(url).path).stem
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower() or DEFAULT_EXTENSION
    if local_id.lower().endswith(suffix):
        local_id = local_id[: -len(suffix)]
    return f"{_slug(dataset).lower()}_{_slug(local_id)}{suffix}"


def image_path(split: str, class_name: str, file_name: str) -> str:
    """``images/<split>/<class>/<file>``: the path of an image relative to its dataset folder."""
    return f"{IMAGES_DIR}/{split}/{class_name}/{file_name}"


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRow]:
    """The rows of a manifest; an absent file has none."""
    source = Path(path)
    if not source.is_file():
        return []
    with open(source, encoding="utf-8", newline="") as handle:
        return [ManifestRow(**{name: record.get(column) or "" for name, column
                               in zip(_COLUMNS, MANIFEST_COLUMNS, strict=True)})
                for record in csv.DictReader(handle)]


def write_manifest(path: str | os.PathLike[str], rows: list[ManifestRow]) -> None:
    """Write the manifest atomically, rows ordered by path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    for row in sorted(rows, key=lambda item: item.path):
        writer.writerow(asdict(row).values())
    atomic_write_text(path, buffer.getvalue())
