"""``SHA256SUMS``: the checksum file written into every published folder.

The format is the one ``sha256sum`` writes and ``sha256sum -c SHA256SUMS`` checks: one
``<hex>  <relative path>`` line per file, forward slashes, sorted by path. It lists every file
in the folder except itself, so whoever downloads a published model can check each file.
"""

from __future__ import annotations

import os
from pathlib import Path

from tigertrap.core.bundle import file_sha256
from tigertrap.core.paths import atomic_write_text

__all__ = ["SUMS_FILE", "folder_files", "read_sums", "write_sums"]

SUMS_FILE = "SHA256SUMS"


def folder_files(folder: str | os.PathLike[str]) -> list[str]:
    """Every file under ``folder`` as a sorted relative POSIX path, but its own ``SHA256SUMS``."""
    root = Path(folder)
    own = root / SUMS_FILE
    return sorted(path.relative_to(root).as_posix() for path in root.rglob("*")
                  if path.is_file() and path != own)


def write_sums(folder: str | os.PathLike[str]) -> dict[str, str]:
    """Write ``folder/SHA256SUMS`` for every other file in it; returns path -> sha256."""
    root = Path(folder)
    sums = {relative: file_sha256(root / relative) for relative in folder_files(root)}
    atomic_write_text(root / SUMS_FILE, "".join(f"{digest}  {relative}\n"
                                                for relative, digest in sums.items()))
    return sums


def read_sums(path: str | os.PathLike[str]) -> dict[str, str]:
    """Read a ``SHA256SUMS`` file into path -> sha256."""
    sums = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, _, relative = line.partition("  ")
            sums[relative.lstrip("*")] = digest
    return sums
