"""Class labels and splits for snips, from a download manifest (``manifest.csv``).

The download stage writes one row per image with its class, split and path relative to the
manifest's folder; snip carries class and split into ``snips.csv`` and the ``--by-class`` layout.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MANIFEST_FILE", "ImageLabel", "find_manifest", "read_labels"]

MANIFEST_FILE = "manifest.csv"
#: Folders above the MD file's folder searched for a manifest (images/ sits in the dataset).
SEARCH_DEPTH = 2
CLASS_COLUMNS = ("class_name", "class", "label")
PATH_COLUMNS = ("path", "relative_path", "file")


@dataclass(frozen=True)
class ImageLabel:
    """An image's class and split."""

    class_name: str
    split: str


def find_manifest(md_dir: Path) -> Path | None:
    """``manifest.csv`` in the MD file's folder or up to two folders above it."""
    folder = md_dir.resolve()
    for candidate in [folder, *folder.parents][: SEARCH_DEPTH + 1]:
        if (candidate / MANIFEST_FILE).is_file():
            return candidate / MANIFEST_FILE
    return None


def _column(header: list[str], names: tuple[str, ...], manifest: Path) -> str:
    for name in names:
        if name in header:
            return name
    raise ValueError(f"{manifest}: no column named any of {', '.join(names)}")


def read_labels(manifest: Path) -> dict[Path, ImageLabel]:
    """Absolute image path -> label, for every row of ``manifest``."""
    with open(manifest, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        path_column = _column(header, PATH_COLUMNS, manifest)
        class_column = _column(header, CLASS_COLUMNS, manifest)
        return {
            (manifest.parent / row[path_column]).resolve():
                ImageLabel(class_name=row[class_column], split=row.get("split", "") or "")
            for row in reader if row.get(path_column)
        }
