"""Published MegaDetector results for the sampled images.

LILA publishes MegaDetector output for each of its datasets, with ``file`` paths relative to the
dataset's folder (``animals/0036/0353.jpg`` for ``.../wcs-unzipped/animals/0036/0353.jpg``).
:func:`subset_md_results` keeps the entries of the images a run sampled, renames them to where
the images now are (``images/<split>/<class>/<file>``) and writes ``md.json`` in format 1.6 next
to them, so the detect stage can skip those images.

The published files are large (millions of images, gigabytes of JSON, usually zipped), so they
are streamed with ijson: only the header fields and the entries of sampled images are kept in
memory; a ``.zip`` is read from its one ``.json`` member without unpacking it to disk.
"""

from __future__ import annotations

import contextlib
import functools
import os
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import ijson

from tigertrap.core.md_results import (
    MDResults,
    MDResultsError,
    parse_md_results,
    write_md_results,
)
from tigertrap.download.manifest import ManifestRow

__all__ = ["MD_FILE", "subset_md_results"]

MD_FILE = "md.json"
#: Top-level fields kept from a published file besides the sampled images.
HEADER_FIELDS = frozenset({"info", "detection_categories", "classification_categories",
                           "classification_category_descriptions"})
IMAGE_PREFIX = "images.item"
_OPENS = frozenset({"start_map", "start_array"})
_CLOSES = frozenset({"end_map", "end_array"})


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


def _renamed(index: dict[str, list[ManifestRow]], entry: dict[str, Any]
             ) -> list[dict[str, Any]]:
    """``entry`` once per sampled row it belongs to, its ``file`` set to the row's path."""
    return [{**entry, "file": row.path}
            for row in index.get(_normalised(str(entry.get("file", ""))), [])]


@contextlib.contextmanager
def _open_json(path: Path) -> Iterator[IO[bytes]]:
    """The file, or the one ``.json`` member of a ``.zip`` (as LILA ships its MD results)."""
    if not path.is_file():
        raise MDResultsError(f"{path}: MegaDetector file not found")
    if path.suffix.lower() != ".zip":
        with path.open("rb") as handle:
            yield handle
        return
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as error:
        raise MDResultsError(f"{path}: not a zip file ({error})") from error
    with archive:
        members = [name for name in archive.namelist() if name.lower().endswith(".json")]
        if len(members) != 1:
            raise MDResultsError(f"{path}: expected one .json file inside, found "
                                 f"{len(members)}")
        with archive.open(members[0]) as handle:
            yield handle


def _stream_md(path: Path, keep: Callable[[dict[str, Any]], list[dict[str, Any]]]
               ) -> dict[str, Any]:
    """The header fields of the MD file at ``path`` and, as ``images``, what ``keep`` returns
    for each image entry, read in one streaming pass."""
    found: dict[str, Any] = {}
    kept: list[dict[str, Any]] = []
    has_images = False
    builder: ijson.ObjectBuilder | None = None
    building, depth = "", 0
    try:
        with _open_json(path) as handle:
            for prefix, event, value in ijson.parse(handle, use_float=True):
                if builder is None:
                    if prefix == "" and event == "map_key" and value == "images":
                        has_images = True
                    if prefix != IMAGE_PREFIX and prefix not in HEADER_FIELDS:
                        continue
                    if event == "map_key":
                        continue
                    builder, building, depth = ijson.ObjectBuilder(), prefix, 0
                builder.event(event, value)
                depth += (event in _OPENS) - (event in _CLOSES)
                if depth == 0:
                    if building == IMAGE_PREFIX:
                        if isinstance(builder.value, dict):
                            kept += keep(builder.value)
                    else:
                        found[building] = builder.value
                    builder = None
    except ijson.JSONError as error:
        raise MDResultsError(f"{path}: not a JSON file ({error})") from error
    except UnicodeDecodeError as error:
        raise MDResultsError(f"{path}: not a JSON file ({error})") from error
    if not has_images:
        raise MDResultsError(f"{path}: not MegaDetector output (no 'images' list)")
    return {**found, "images": kept}


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
        raw = _stream_md(Path(md_file), functools.partial(_renamed, index))
        kept = raw["images"]
        matched[dataset] = len(kept)
        part = parse_md_results(raw, source=str(md_file))
        if merged is None:
            merged = part
        else:
            merged.images.extend(part.images)
    if merged is not None:
        merged.info["tigertrap_source"] = "LILA BC published MegaDetector results, subset"
        write_md_results(merged, Path(dataset_dir) / MD_FILE)
    return matched
