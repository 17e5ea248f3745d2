"""Published MegaDetector results for the sampled images.

LILA publishes MegaDetector output for each of its datasets, with ``file`` paths relative to the
dataset's folder (``animals/0036/0353.jpg`` for ``.../wcs-unzipped/animals/0036/0353.jpg``).
:func:`subset_md_results` keeps the entries of the images a run sampled, renames them to where
the images now are (``images/<split>/<class>/<file>``) and writes ``md.json`` in format 1.6 next
to them, so the detect stage can skip those images.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from tigertrap.core.md_results import (
    MDResults,
    MDResultsError,
    parse_md_results,
    write_md_results,
)
from tigertrap.download.manifest import ManifestRow

__all__ = ["MD_FILE", "subset_md_results"]

MD_FILE = "md.json"


def _url_tails(row: ManifestRow) -> set[str]:
    tails = set()
    for url in (row.url_gcp, row.url_aws, row.url_azure):
        parts = PurePosixPath(unquote(urlsplit(url).path)).parts[1:] if url else ()
        tails.update("/".join(parts[start:]) for start in range(len(parts)))
    return tails


def _index(rows: list[ManifestRow]) -> dict[str, list[ManifestRow]]:
    """URL path tail -> the rows whose URL ends with it (only tails naming one image)."""
    by_tail: dict[str, list[ManifestRow]] = defaultdict(list)
    image_of_tail: dict[str, str] = {}
    ambiguous = set()
    for row in rows:
        for tail in _url_tails(row):
            if image_of_tail.setdefault(tail, row.image_id) != row.image_id:
                ambiguous.add(tail)
            by_tail[tail].append(row)
    return {tail: found for tail, found in by_tail.items() if tail not in ambiguous}


def _normalised(file: str) -> str:
    return file.replace("\\", "/").lstrip("./").lstrip("/")


def _read_raw(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise MDResultsError(f"{path}: MegaDetector file not found") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MDResultsError(f"{path}: not a JSON file ({error})") from error
    if not isinstance(raw, dict) or not isinstance(raw.get("images"), list):
        raise MDResultsError(f"{path}: not MegaDetector output (no 'images' list)")
    return raw


def subset_md_results(md_files: Mapping[str, str | os.PathLike[str]], rows: list[ManifestRow],
                      dataset_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Write ``<dataset_dir>/md.json`` with the published entries of the complete ``rows``.

    Args:
        md_files: LILA dataset name (``dataset_name``, e.g. ``WCS Camera Traps``) -> local
            MegaDetector results file of that dataset.
        rows: the manifest; only complete rows of those datasets are looked up.
        dataset_dir: the dataset folder; ``file`` values are written relative to it.

    Returns:
        Matched images per dataset.

    Raises:
        MDResultsError: a file that is missing or not MegaDetector output.
    """
    merged: MDResults | None = None
    matched: dict[str, int] = {}
    for dataset, md_file in md_files.items():
        index = _index([row for row in rows if row.dataset == dataset and row.complete])
        raw = _read_raw(Path(md_file))
        kept = []
        for entry in raw["images"]:
            for row in index.get(_normalised(str(entry.get("file", ""))), []):
                kept.append({**entry, "file": row.path})
        matched[dataset] = len(kept)
        part = parse_md_results({**raw, "images": kept}, source=str(md_file))
        if merged is None:
            merged = part
        else:
            merged.images.extend(part.images)
    if merged is not None:
        merged.info["tigertrap_source"] = "LILA BC published MegaDetector results, subset"
        write_md_results(merged, Path(dataset_dir) / MD_FILE)
    return matched
