"""Which images a detect run covers: a folder, a list file or a download manifest.

* a folder: every file with an image extension (``tigertrap.core.images.IMAGE_EXTENSIONS``),
  recursively by default, except in excluded sub-folders (``snips/``: crops are not camera
  frames); hidden files and folders (``.name``, e.g. tigertrap's own checkpoints) are skipped;
* a ``.txt`` list (one path per line) or a ``.json`` list of paths; relative paths are taken
  from the list file's folder;
* a download manifest ``.csv`` (tigertrap's ``manifest.csv``): the path column (``path``; or
  the one ``PATH_COLUMN`` names) relative to the manifest's folder. Rows whose ``status`` says
  the image was never downloaded (``pending``, ``failed``) are counted, not detected.

A file that is listed but unreadable (or missing) stays in the set: detection records it as a
``failure`` entry rather than dropping it.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from tigertrap.core.images import is_image_file
from tigertrap.core.md_results import relative_file_name

__all__ = [
    "MANIFEST_PATH_COLUMNS",
    "NOT_DOWNLOADED",
    "ImageSet",
    "ImageSourceError",
    "find_images",
    "relative_name",
]

#: Columns tried, in order, when the configured path column is absent.
MANIFEST_PATH_COLUMNS = ("path", "relative_path", "file", "file_name")
#: Manifest ``status`` values of images that are not on disk.
NOT_DOWNLOADED = frozenset({"pending", "failed"})
LIST_SUFFIXES = (".txt", ".json")
MANIFEST_SUFFIX = ".csv"


class ImageSourceError(ValueError):
    """A folder, list or manifest that cannot be used; the message says what to fix."""


@dataclass
class ImageSet:
    """Absolute image paths (listed order, no duplicates) and where they were listed from."""

    images: list[Path]
    #: The folder or list file the images came from.
    source: Path
    #: Manifest rows left out because the image was never downloaded.
    not_downloaded: int = 0


def _absolute(path: Path) -> Path:
    # abspath, not resolve(): a symlinked image keeps the name it has in the folder.
    return Path(os.path.abspath(path))


def _scan_folder(folder: Path, recursive: bool, exclude_dirs: Collection[str]) -> list[Path]:
    found: list[Path] = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in exclude_dirs)
        found.extend(Path(directory) / name for name in sorted(files)
                     if not name.startswith(".") and is_image_file(name))
        if not recursive:
            break
    return found


def _read_list(list_file: Path) -> list[str]:
    text = list_file.read_text(encoding="utf-8-sig")
    if list_file.suffix.lower() == ".txt":
        return [line.strip() for line in text.splitlines() if line.strip()]
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as error:
        raise ImageSourceError(f"{list_file}: not a JSON list of paths ({error})") from error
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        raise ImageSourceError(f"{list_file}: a .json image list must be a list of path strings")
    return entries


def _manifest_column(header: list[str], wanted: str, manifest: Path) -> str:
    if wanted in header:
        return wanted
    fallback = next((name for name in MANIFEST_PATH_COLUMNS if name in header), None)
    if fallback is None:
        raise ImageSourceError(f"{manifest}: no column {wanted!r} with image paths (columns: "
                               f"{', '.join(header)}); set PATH_COLUMN")
    return fallback


def _read_manifest(manifest: Path, path_column: str) -> tuple[list[str], int]:
    with manifest.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        column = _manifest_column(list(reader.fieldnames or []), path_column, manifest)
        paths: list[str] = []
        not_downloaded = 0
        for row in reader:
            if (row.get("status") or "").strip().lower() in NOT_DOWNLOADED:
                not_downloaded += 1
            elif (row.get(column) or "").strip():
                paths.append(row[column].strip())
    return paths, not_downloaded


def find_images(source: Path, *, recursive: bool = True, exclude_dirs: Collection[str] = (),
                path_column: str = MANIFEST_PATH_COLUMNS[0]) -> ImageSet:
    """List the images of a folder, list file or manifest (see the module docstring).

    Raises:
        ImageSourceError: ``source`` does not exist or is not a folder, .txt, .json or .csv.
    """
    if source.is_dir():
        images = _scan_folder(_absolute(source), recursive, exclude_dirs)
        return ImageSet(images=images, source=source)
    if not source.is_file():
        raise ImageSourceError(f"{source}: no such folder or image list")
    suffix = source.suffix.lower()
    not_downloaded = 0
    if suffix in LIST_SUFFIXES:
        entries = _read_list(source)
    elif suffix == MANIFEST_SUFFIX:
        entries, not_downloaded = _read_manifest(source, path_column)
    else:
        raise ImageSourceError(f"{source}: give a folder, a .txt or .json image list, or a "
                               f"manifest .csv")
    base = _absolute(source).parent
    images = [_absolute(base / entry) for entry in entries]
    return ImageSet(images=list(dict.fromkeys(images)), source=source,
                    not_downloaded=not_downloaded)


def relative_name(image: Path, base_dir: Path) -> str:
    """The ``file`` value for ``image`` in an output file in ``base_dir`` (forward slashes).

    Raises:
        ImageSourceError: the image is not inside ``base_dir``.
    """
    try:
        return relative_file_name(image, base_dir)
    except ValueError:
        raise ImageSourceError(f"{image} is outside {base_dir}, the output file's folder; "
                               f"put MD_FILE in a folder that contains all images") from None
