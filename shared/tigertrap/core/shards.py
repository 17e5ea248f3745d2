"""Shard files: how a sharded stage splits its input and merges its outputs back.

A shard's files are hidden files beside the stage's output, named after the output, the
shard's index and the shard count (``.md.json.shard-00002-of-00005.json``): two shards of one
job never write the same file, a redelivered shard rewrites its own, and a folder scan (detect
skips hidden files) never mistakes them for data. They are written atomically; a merge reads
them in index order, so its output is the same however many workers ran the shards, and
deletes them once the merged output is in place.

MD files split into subsets that keep the original's ``info`` and categories and live in the
same folder, so every image's relative ``file`` stays as it was.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

from tigertrap.core.md_results import MDResults, read_md_results, write_md_results
from tigertrap.core.paths import atomic_write

__all__ = [
    "ShardsIncomplete",
    "chunks",
    "merge_csv",
    "merge_md_shards",
    "remove_files",
    "require_files",
    "shard_path",
    "split_md_results",
]

T = TypeVar("T")


class ShardsIncomplete(RuntimeError):
    """A merge found a shard's output missing (the runner looks again a little later)."""


def shard_path(output: str | os.PathLike[str], index: int, count: int, suffix: str = "") -> Path:
    """The hidden file of shard ``index`` (0-based) of ``count`` beside ``output``."""
    target = Path(output)
    return target.parent / f".{target.name}.shard-{index + 1:05d}-of-{count:05d}{suffix}"


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in consecutive pieces of at most ``size`` (none when ``items`` is empty)."""
    if size < 1:
        raise ValueError("a shard holds at least one item")
    return [items[start:start + size] for start in range(0, len(items), size)]


def split_md_results(md_file: str | os.PathLike[str], size: int, *, suffix: str
                     ) -> list[dict[str, object]]:
    """Write ``md_file``'s images as subset MD files of at most ``size`` images beside it.

    Returns one descriptor per shard (``md_file``: the subset's name in the same folder,
    ``count``: its images); none when the file fits in one shard.
    """
    results = read_md_results(md_file)
    pieces = chunks(results.images, size)
    if len(pieces) <= 1:
        return []
    shards: list[dict[str, object]] = []
    for index, images in enumerate(pieces):
        subset = results.model_copy(update={"images": list(images)})
        path = shard_path(md_file, index, len(pieces), suffix)
        write_md_results(subset, path)
        shards.append({"md_file": path.name, "count": len(images)})
    return shards


def require_files(paths: Iterable[Path]) -> list[Path]:
    """``paths``, all there; :class:`ShardsIncomplete` naming the first missing one."""
    found = list(paths)
    missing = [path.name for path in found if not path.is_file()]
    if missing:
        raise ShardsIncomplete(f"shard output {missing[0]} is not there yet "
                               f"({len(missing)} of {len(found)} missing)")
    return found


def merge_md_shards(paths: Sequence[Path]) -> MDResults:
    """The shards' MD files as one (images in shard order; ``info`` and categories of the
    first). Raises :class:`ShardsIncomplete` when one is missing."""
    parts = [read_md_results(path) for path in require_files(paths)]
    merged = parts[0].model_copy(update={"images": [image for part in parts
                                                    for image in part.images]})
    return merged


def merge_csv(paths: Sequence[Path], target: Path, *, sort: bool = False) -> int:
    """Concatenate the shards' CSV files (one header) into ``target`` atomically — rows in
    shard order, or sorted (``sort``: as a whole run sorts them, by their columns in order).
    Returns the number of rows. Raises :class:`ShardsIncomplete` when one is missing."""
    header: list[str] | None = None
    rows: list[list[str]] = []
    found = require_files(paths)
    # keep the stage's own line ending (csv's default \r\n, or \n)
    ending = "\r\n" if found and b"\r\n" in found[0].read_bytes()[:65536] else "\n"
    for path in found:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            first = next(reader, None)
            if first is None:
                continue
            if header is None:
                header = first
            elif first != header:
                raise ValueError(f"{path.name}: columns differ from the first shard's")
            rows.extend(reader)
    if sort:
        rows.sort()
    with atomic_write(target, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator=ending)
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
    return len(rows)


def remove_files(paths: Iterable[Path]) -> None:
    """Delete shard files (after the merged output is in place)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
