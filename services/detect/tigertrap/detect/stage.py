"""The detect stage as the job system runs it (see ``tigertrap.core.stages``): whole, or in shards.

A shard is a slice of the input's images in listing order, written as a hidden JSON image list
beside the output; :func:`run_shard` runs :func:`~tigertrap.detect.batch.run_detect` on it into
the shard's own hidden MD file (with its own checkpoint, so a redone shard resumes), and
:func:`merge` writes ``MD_FILE`` from the shards in order: the same images, in the same order,
with the same detections as one unsharded run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tigertrap.core.md_results import now_timestamp, write_md_results
from tigertrap.core.paths import atomic_write_text
from tigertrap.core.queue import ProgressFn
from tigertrap.core.shards import chunks, merge_md_shards, remove_files, shard_path
from tigertrap.detect.batch import output_path, run_detect
from tigertrap.detect.checkpoint import default_checkpoint_path
from tigertrap.detect.config import DetectSettings
from tigertrap.detect.sources import find_images, relative_name

__all__ = ["merge", "run", "run_shard", "split"]

LIST_SUFFIX = ".images.json"
MD_SUFFIX = ".json"


def run(settings: DetectSettings, progress: ProgressFn, image_root: Path) -> dict[str, Any]:
    """The whole stage; images outside ``image_root`` are failures, never opened."""
    summary = run_detect(settings, progress=progress, image_root=image_root)
    return summary.model_dump(mode="json")


def split(settings: DetectSettings, shard_size: int, image_root: Path) -> list[dict[str, Any]]:
    """Image lists of at most ``shard_size`` images beside the output (none: run whole)."""
    md_file = output_path(settings)
    source = settings.image_list or settings.input_dir
    if source is None:
        return []
    image_set = find_images(Path(source), recursive=settings.recursive,
                            exclude_dirs=settings.exclude_dirs,
                            path_column=settings.path_column)
    names = [relative_name(image, md_file.parent) for image in image_set.images]
    pieces = chunks(names, shard_size)
    if len(pieces) <= 1:
        return []
    shards = []
    for index, piece in enumerate(pieces):
        listing = shard_path(md_file, index, len(pieces), LIST_SUFFIX)
        atomic_write_text(listing, json.dumps(list(piece), ensure_ascii=False))
        shards.append({"list": listing.name, "count": len(piece),
                       "md_file": shard_path(md_file, index, len(pieces), MD_SUFFIX).name,
                       "not_downloaded": image_set.not_downloaded if index == 0 else 0})
    return shards


def _shard_settings(settings: DetectSettings, shard: dict[str, Any]) -> DetectSettings:
    folder = output_path(settings).parent
    return settings.model_copy(update={
        "input_dir": None, "image_list": folder / shard["list"],
        "md_file": shard["md_file"], "checkpoint_file": None})


def run_shard(settings: DetectSettings, shard: dict[str, Any], progress: ProgressFn,
              image_root: Path) -> dict[str, Any]:
    """Detect on one shard's images into the shard's MD file."""
    summary = run_detect(_shard_settings(settings, shard), progress=progress,
                         image_root=image_root)
    return summary.model_dump(mode="json")


def merge(settings: DetectSettings, shards: list[dict[str, Any]],
          image_root: Path) -> dict[str, Any]:
    """``MD_FILE`` from the shards' MD files, in order; the shard files are removed."""
    md_file = output_path(settings)
    folder = md_file.parent
    parts = [folder / shard["md_file"] for shard in shards]
    merged = merge_md_shards(parts)
    merged.info["detection_completion_time"] = now_timestamp()
    write_md_results(merged, md_file)
    remove_files([*parts, *(folder / shard["list"] for shard in shards),
                  *(default_checkpoint_path(part) for part in parts)])
    failures = sum(entry.failed for entry in merged.images)
    return {"md_file": str(md_file), "detector": merged.info.get("detector"),
            "images": len(merged.images), "detected": len(merged.images), "reused": 0,
            "failures": failures,
            "not_downloaded": sum(int(shard.get("not_downloaded", 0)) for shard in shards),
            "seconds": None}
