"""The snip stage as the job system runs it (see ``tigertrap.core.stages``): whole, or in shards.

A shard is a slice of the MD file's images, written as a hidden subset MD file beside it (so
every image's relative path holds). Each shard crops into the same snips folder — crop names
come from the image and the detection index, so no two shards write the same crop — with its
own hidden ``snips.csv`` and failures table; :func:`merge` writes ``snips.csv`` and
``snip_failures.csv`` sorted as one run sorts them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tigertrap.core.paths import remove_partials
from tigertrap.core.queue import ProgressFn
from tigertrap.core.shards import merge_csv, remove_files, shard_path, split_md_results
from tigertrap.snip.config import SnipSettings
from tigertrap.snip.snip import FAILURES_CSV, SNIPS_CSV, run_snip

__all__ = ["merge", "run", "run_shard", "split"]

SUBSET_SUFFIX = ".json"


def _result(settings: SnipSettings, result: dict[str, Any]) -> dict[str, Any]:
    if settings.by_class:
        result["by_class_dir"] = str(settings.snips_path / settings.by_class_dir)
    return result


def run(settings: SnipSettings, progress: ProgressFn, image_root: Path) -> dict[str, Any]:
    """The whole stage; images outside ``image_root`` are failures, never read."""
    return _result(settings, run_snip(settings, progress=progress,
                                      image_root=image_root).as_dict())


def split(settings: SnipSettings, shard_size: int, image_root: Path) -> list[dict[str, Any]]:
    """Subset MD files of at most ``shard_size`` images beside the MD file (none: run whole).
    Dead partial files of an earlier run are removed here, once, before any shard starts."""
    shards = split_md_results(settings.md_path, shard_size, suffix=SUBSET_SUFFIX)
    if shards:
        remove_partials(settings.snips_path)
    return shards


def _tables(settings: SnipSettings, index: int, count: int) -> tuple[Path, Path]:
    folder = settings.snips_path
    return (shard_path(folder / SNIPS_CSV, index, count),
            shard_path(folder / FAILURES_CSV, index, count))


def run_shard(settings: SnipSettings, shard: dict[str, Any], progress: ProgressFn,
              image_root: Path) -> dict[str, Any]:
    """Crop one shard's images; its tables go to its own hidden files."""
    index, count = int(shard["index"]), int(shard["of"])
    tables = _tables(settings, index, count)
    summary = run_snip(settings, progress=progress, image_root=image_root,
                       md_path=settings.md_path.parent / str(shard["md_file"]),
                       tables=(tables[0].name, tables[1].name), clean_partials=False)
    return summary.as_dict()


def merge(settings: SnipSettings, shards: list[dict[str, Any]],
          image_root: Path) -> dict[str, Any]:
    """``snips.csv`` and ``snip_failures.csv`` from the shards' tables; shard files removed."""
    tables = [_tables(settings, int(s["index"]), int(s["of"])) for s in shards]
    folder = settings.snips_path
    crops = merge_csv([snips for snips, _ in tables], folder / SNIPS_CSV, sort=True)
    failures = merge_csv([failed for _, failed in tables], folder / FAILURES_CSV, sort=True)
    subsets = [settings.md_path.parent / str(shard["md_file"]) for shard in shards]
    remove_files([*subsets, *(path for pair in tables for path in pair)])
    return _result(settings, {
        "images": sum(int(shard["count"]) for shard in shards), "crops": crops,
        "failures": failures, "snips_dir": str(folder), "snips_csv": str(folder / SNIPS_CSV)})
