"""Importing the CVWC2019 Amur tiger images (ATRW) into a dataset.

LILA has only about 321 tiger camera-trap frames, so the seed trains tigers on the CVWC2019
Amur tiger re-identification images and keeps LILA's tigers as the out-of-distribution test set
``test2``. :func:`import_cvwc` takes the ATRW detection archive (zip or tar.gz) or its unpacked
folder: images under a folder named ``test`` go to ``test``, the others (``trainval``) to
``train`` and ``val`` by a seeded draw. ATRW has no camera or sequence ids, so these rows carry
no group and the split report lists them as ungrouped. Each image must decode; it is written
atomically to ``images/<split>/tiger/cvwc2019_<name>``; complete files are not rewritten.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from tigertrap.core.images import ImageLoadError, is_image_file
from tigertrap.core.paths import atomic_write_bytes, within
from tigertrap.core.queue import ProgressFn
from tigertrap.download.config import DownloadSettings
from tigertrap.download.fetch import verify_image_bytes
from tigertrap.download.manifest import (
    EXISTING,
    FAILED,
    MANIFEST_FILE,
    OK,
    ManifestRow,
    image_path,
    read_manifest,
)
from tigertrap.download.metadata import stable_key

__all__ = [
    "CVWC_DATASET",
    "CVWC_SOURCE",
    "cvwc_split",
    "download_cvwc",
    "import_cvwc",
    "iter_cvwc_images",
]

CVWC_SOURCE = "cvwc"
CVWC_DATASET = "CVWC2019"
TEST_FOLDER = "test"
_KEY_RANGE = float(2**64)

ImageReader = Callable[[], bytes]


@contextmanager
def _archive_members(source: Path) -> Iterator[Iterator[tuple[str, ImageReader]]]:
    if source.is_dir():
        # a file symlinked from outside the folder is not part of the data set: not read
        files = sorted(path for path in source.rglob("*")
                       if path.is_file() and within(path, source))
        yield ((path.relative_to(source).as_posix(), path.read_bytes) for path in files)
    elif zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            names = sorted(name for name in archive.namelist() if not name.endswith("/"))
            yield ((name, lambda name=name: archive.read(name)) for name in names)
    elif tarfile.is_tarfile(source):
        with tarfile.open(source) as archive:
            members = sorted((m for m in archive.getmembers() if m.isfile()),
                             key=lambda member: member.name)

            def reader(member: tarfile.TarInfo) -> ImageReader:
                return lambda: archive.extractfile(member).read()  # type: ignore[union-attr]

            yield ((member.name, reader(member)) for member in members)
    else:
        raise ValueError(f"CVWC_SOURCE {source}: not a folder, zip or tar archive")


@contextmanager
def iter_cvwc_images(source: str | os.PathLike[str]
                     ) -> Iterator[Iterator[tuple[str, ImageReader]]]:
    """``(relative path, read bytes)`` for each image file in the folder or archive."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"CVWC_SOURCE {path} not found")
    with _archive_members(path) as members:
        yield ((name, read) for name, read in members
               if is_image_file(name) and not PurePosixPath(name).name.startswith("."))


def cvwc_split(relative: str, seed: int, fractions: dict[str, float]) -> str:
    """``test`` for images under a ``test`` folder, else ``val`` or ``train`` (seeded)."""
    if TEST_FOLDER in (part.lower() for part in PurePosixPath(relative).parts[:-1]):
        return "test"
    train, val = fractions.get("train", 0.0), fractions.get("val", 0.0)
    share_val = val / (train + val) if train + val else 0.0
    return "val" if stable_key(relative, seed) / _KEY_RANGE < share_val else "train"


def _file_name(relative: str) -> str:
    path = PurePosixPath(relative)
    stem = "_".join([*path.parts[:-1], path.stem]).replace(" ", "_")
    return f"cvwc2019_{stem}{path.suffix.lower()}"


def _import_one(relative: str, read: ImageReader, folder: Path, settings: DownloadSettings,
                known: dict[str, ManifestRow]) -> ManifestRow:
    split = cvwc_split(relative, settings.seed, settings.fractions)
    row = ManifestRow(source=CVWC_SOURCE, class_name=settings.cvwc_class, split=split,
                      dataset=CVWC_DATASET, rule="cvwc2019", image_id=f"{CVWC_DATASET} : "
                      f"{relative}", path=image_path(split, settings.cvwc_class,
                                                     _file_name(relative)))
    target = folder / row.path
    before = known.get(row.path)
    if before is not None and before.complete and before.bytes.isdigit() \
            and target.is_file() and target.stat().st_size == int(before.bytes):
        row.status, row.bytes, row.sha256 = EXISTING, before.bytes, before.sha256
        return row
    data = read()
    try:
        verify_image_bytes(data, relative)
    except ImageLoadError as error:
        row.status, row.error = FAILED, f"not an image ({error.reason})"
        return row
    atomic_write_bytes(target, data)
    row.status, row.bytes, row.sha256 = OK, str(len(data)), hashlib.sha256(data).hexdigest()
    return row


def import_cvwc(settings: DownloadSettings, folder: Path,
                progress: ProgressFn | None = None) -> tuple[list[ManifestRow], dict[str, Any]]:
    """Import every image of ``CVWC_SOURCE`` into ``folder``; returns all manifest rows (other
    sources' rows kept) and the import's parameters for the split report."""
    if not settings.cvwc_source:
        raise ValueError("CVWC_SOURCE is required: the CVWC2019 zip, tar.gz or folder")
    old_rows = read_manifest(folder / MANIFEST_FILE)
    known = {row.path: row for row in old_rows if row.source == CVWC_SOURCE}
    imported: list[ManifestRow] = []
    with iter_cvwc_images(settings.cvwc_source) as images:
        for relative, read in images:
            imported.append(_import_one(relative, read, folder, settings, known))
            if progress:
                progress(len(imported), 0)
    if not imported:
        raise ValueError(f"CVWC_SOURCE {settings.cvwc_source}: no images found")
    params = {"source": Path(settings.cvwc_source).name, "seed": settings.seed,
              "fractions": settings.fractions, "class": settings.cvwc_class}
    return [row for row in old_rows if row.source != CVWC_SOURCE] + imported, params


def download_cvwc(settings: DownloadSettings, data_root: str | os.PathLike[str],
                  progress: ProgressFn | None = None) -> dict[str, Any]:
    """Import CVWC2019 into ``datasets/<DATASET_NAME>`` and rewrite the manifest and split
    report; returns the same summary as :func:`tigertrap.download.lila.download_lila`."""
    from tigertrap.download.lila import dataset_dir, summarise, write_split_report

    folder = dataset_dir(data_root, settings.dataset_name)
    rows, params = import_cvwc(settings, folder, progress)
    report = write_split_report(folder, rows, settings.split_by, CVWC_SOURCE, params)
    summary = summarise([row for row in rows if row.source == CVWC_SOURCE], folder,
                        Path(data_root))
    summary["leak_free"] = report["leak_free"]
    summary["splits"] = {split: classes.get(settings.cvwc_class, 0)
                         for split, classes in report["classes"].items()}
    return summary
