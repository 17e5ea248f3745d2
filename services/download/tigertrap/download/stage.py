"""The download stage as the job system runs it (see ``tigertrap.core.stages``): the LILA part
when ``METADATA`` is given, the CVWC import when ``CVWC_SOURCE`` is given.

A large LILA download fetches in shards: the split step samples, splits and writes the manifest
once (:func:`~tigertrap.download.lila.plan_download`), each shard fetches its slice of the
manifest's rows and records their status in its own hidden file, and :func:`merge` writes the
statuses into the manifest, summarises, subsets published MD results and runs the CVWC import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tigertrap.core.paths import atomic_write_json
from tigertrap.core.queue import ProgressFn
from tigertrap.core.shards import chunks, remove_files, require_files, shard_path
from tigertrap.download.config import DownloadSettings
from tigertrap.download.manifest import MANIFEST_FILE, read_manifest

__all__ = ["merge", "run", "run_shard", "split"]

ROWS_SUFFIX = ".rows.json"
RESULT_SUFFIX = ".result.json"
STATUS_FIELDS = ("status", "error", "bytes", "sha256")


def run(settings: DownloadSettings, progress: ProgressFn, image_root: Path) -> dict[str, Any]:
    """Sample, split and download LILA BC images and/or import CVWC2019 tigers into
    ``datasets/<DATASET_NAME>/``; result paths are relative to the data root."""
    from tigertrap.download.cvwc import download_cvwc
    from tigertrap.download.lila import download_lila

    if not settings.metadata and not settings.cvwc_source:
        raise ValueError("give METADATA (LILA metadata file) and/or CVWC_SOURCE")
    result: dict[str, Any] = {}
    if settings.metadata:
        result["lila"] = download_lila(settings, image_root, progress)
    if settings.cvwc_source:
        result["cvwc"] = download_cvwc(settings, image_root, progress)
    return result


def _manifest(settings: DownloadSettings, image_root: Path) -> Path:
    from tigertrap.download.lila import dataset_dir

    return dataset_dir(image_root, settings.dataset_name) / MANIFEST_FILE


def split(settings: DownloadSettings, shard_size: int, image_root: Path
          ) -> list[dict[str, Any]]:
    """Plan the LILA rows (manifest written) and slice them for fetching (none: run whole)."""
    from tigertrap.download.lila import LilaPlan, plan_download

    if not settings.metadata or settings.dry_run:
        return []
    plan = plan_download(settings, image_root)
    assert isinstance(plan, LilaPlan)
    pieces = chunks([row.path for row in plan.lila], shard_size)
    if len(pieces) <= 1:
        return []
    manifest = _manifest(settings, image_root)
    shards = []
    for index, piece in enumerate(pieces):
        listing = shard_path(manifest, index, len(pieces), ROWS_SUFFIX)
        atomic_write_json(listing, list(piece))
        shards.append({"rows": listing.name, "count": len(piece),
                       "leak_free": plan.leak_free, "selected": plan.selected})
    return shards


def _result_file(manifest: Path, shard: dict[str, Any]) -> Path:
    return shard_path(manifest, int(shard["index"]), int(shard["of"]), RESULT_SUFFIX)


def run_shard(settings: DownloadSettings, shard: dict[str, Any], progress: ProgressFn,
              image_root: Path) -> dict[str, Any]:
    """Fetch one slice of the manifest's rows; their statuses go to the shard's own file."""
    from tigertrap.download.lila import LILA_SOURCE, fetch_rows

    manifest = _manifest(settings, image_root)
    wanted = set(json.loads((manifest.parent / shard["rows"]).read_text(encoding="utf-8")))
    rows = [row for row in read_manifest(manifest)
            if row.source == LILA_SOURCE and row.path in wanted]
    fetch_rows(rows, manifest.parent, settings, progress)
    atomic_write_json(_result_file(manifest, shard), [
        {"path": row.path, **{name: getattr(row, name) for name in STATUS_FIELDS}}
        for row in rows])
    return {"images": len(rows)}


def merge(settings: DownloadSettings, shards: list[dict[str, Any]],
          image_root: Path) -> dict[str, Any]:
    """The manifest with every shard's statuses, the stage's summary, then the CVWC import."""
    from tigertrap.download.cvwc import download_cvwc
    from tigertrap.download.lila import LILA_SOURCE, LilaPlan, finish_download

    manifest = _manifest(settings, image_root)
    results = require_files(_result_file(manifest, shard) for shard in shards)
    statuses = {entry["path"]: entry for path in results
                for entry in json.loads(path.read_text(encoding="utf-8"))}
    rows = read_manifest(manifest)
    for row in rows:
        if row.source == LILA_SOURCE and row.path in statuses:
            for name in STATUS_FIELDS:
                setattr(row, name, statuses[row.path][name])
    plan = LilaPlan(folder=manifest.parent, rows=rows,
                    lila=[row for row in rows if row.source == LILA_SOURCE],
                    leak_free=bool(shards[0]["leak_free"]), selected=shards[0]["selected"])
    plan.save()
    result: dict[str, Any] = {"lila": finish_download(plan, settings, image_root)}
    remove_files([*results, *(manifest.parent / shard["rows"] for shard in shards)])
    if settings.cvwc_source:
        result["cvwc"] = download_cvwc(settings, image_root)
    return result
