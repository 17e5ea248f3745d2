"""The download stage for LILA BC: metadata in, a split, downloaded dataset out.

:func:`plan_lila` scans the metadata once for the spec's rules, samples each class (seeded,
spread over locations and sequences), reads the chosen rows and assigns leak-free splits.
:func:`download_lila` writes ``manifest.csv`` and ``split_report.json``, downloads what is not
complete yet (or copies it from ``LOCAL_ROOT``), and optionally writes ``md.json`` from published
MegaDetector results. Re-running with the same inputs reuses the manifest and only fetches what
is missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from tigertrap.core.images import ImageLoadError
from tigertrap.core.paths import TEMP_SUFFIX, atomic_write_json, within
from tigertrap.core.queue import ProgressFn
from tigertrap.download.config import DownloadSettings
from tigertrap.download.fetch import (
    FetchJob,
    FetchOptions,
    FetchResult,
    fetch_images,
    verify_image_bytes,
)
from tigertrap.download.manifest import (
    COMPLETE,
    EXISTING,
    FAILED,
    LOCAL,
    MANIFEST_FILE,
    ManifestRow,
    image_file_name,
    image_path,
    read_manifest,
    write_manifest,
)
from tigertrap.download.md_subset import subset_md_results
from tigertrap.download.metadata import (
    ScanResult,
    location_key,
    read_records,
    scan,
    sequence_key,
)
from tigertrap.download.sampling import allocate, select_spread
from tigertrap.download.spec import ClassSpec, load_spec
from tigertrap.download.splits import SPLIT_REPORT_FILE, assign_groups, group_of, split_report

__all__ = [
    "LILA_SOURCE",
    "LilaPlan",
    "count_available",
    "dataset_dir",
    "download_lila",
    "fetch_rows",
    "finish_download",
    "plan_download",
    "plan_lila",
    "summarise",
    "write_split_report",
]

LILA_SOURCE = "lila"
#: The manifest is saved at least this often during downloads, so a killed run loses little.
CHECKPOINT_S = 10.0
#: Shortest tail of a URL path accepted as the same image under LOCAL_ROOT (folder + file).
MIN_LOCAL_PARTS = 2
MAX_ERRORS_SHOWN = 10


def dataset_dir(data_root: str | os.PathLike[str], name: str) -> Path:
    """``<data root>/datasets/<name>``."""
    return Path(data_root) / "datasets" / name


def _targets(spec: ClassSpec, settings: DownloadSettings) -> dict[str, int]:
    return {target.name: settings.class_samples_default if target.target is None
            else target.target for target in spec.classes}


def _allocations(found: ScanResult, spec: ClassSpec, settings: DownloadSettings
                 ) -> dict[tuple[str, str], int]:
    targets = _targets(spec, settings)
    counts = {}
    for target in spec.classes:
        keys = [(target.name, rule.name) for rule in target.rules]
        shares = allocate(targets[target.name], [len(found.matches[key]) for key in keys],
                          [rule.quota for rule in target.rules])
        counts.update(zip(keys, shares, strict=True))
    return counts


def count_available(found: ScanResult, spec: ClassSpec, settings: DownloadSettings
                    ) -> dict[str, Any]:
    """The dry-run report: per class and rule, rows available, their locations, and how many
    a run would take."""
    allocated = _allocations(found, spec, settings)
    targets = _targets(spec, settings)
    classes = {}
    for target in spec.classes:
        rules = {}
        for rule in target.rules:
            matches = found.matches[(target.name, rule.name)]
            rules[rule.name] = {"available": len(matches),
                                "locations": len(set(matches.locations)),
                                "selected": allocated[(target.name, rule.name)]}
        classes[target.name] = {
            "target": targets[target.name],
            "available": sum(rule["available"] for rule in rules.values()),
            "selected": sum(rule["selected"] for rule in rules.values()),
            "holdout": target.holdout,
            "rules": rules,
        }
    return {"rows_scanned": found.rows, "columns": found.columns,
            "malformed_rows": found.malformed, "classes": classes}


def _select(found: ScanResult, spec: ClassSpec, settings: DownloadSettings
            ) -> dict[int, tuple[str, str]]:
    """Record number -> (class, rule) of every sampled row."""
    chosen: dict[int, tuple[str, str]] = {}
    for key, count in _allocations(found, spec, settings).items():
        matches = found.matches[key]
        for index in select_spread(matches, count, found.locations, settings.seed):
            chosen[int(matches.records[index])] = key
    return chosen


def _row(fields: dict[str, str], class_name: str, rule: str, split: str) -> ManifestRow:
    dataset, image_id = fields["dataset_name"], fields["image_id"]
    url = fields["url_gcp"] or fields["url_aws"] or fields["url_azure"]
    return ManifestRow(
        source=LILA_SOURCE, class_name=class_name, rule=rule, split=split, dataset=dataset,
        location=location_key(dataset, fields["location_id"]),
        sequence=sequence_key(fields["sequence_id"], image_id), datetime=fields["datetime"],
        image_id=image_id, url_gcp=fields["url_gcp"], url_aws=fields["url_aws"],
        url_azure=fields["url_azure"], path=image_path(split, class_name,
                                                       image_file_name(dataset, image_id, url)))


def _assign_splits(rows: list[ManifestRow], settings: DownloadSettings) -> list[ManifestRow]:
    class_counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in rows:
        if not row.split:
            class_counts[group_of(row, settings.split_by)][row.class_name] += 1
    assignment = assign_groups(class_counts, settings.fractions, settings.seed)
    for row in rows:
        if not row.split:
            row.split = assignment[group_of(row, settings.split_by)]
            row.path = image_path(row.split, row.class_name, PurePosixPath(row.path).name)
    return rows


def plan_lila(metadata: str | os.PathLike[str], spec: ClassSpec, settings: DownloadSettings,
              on_rows: Callable[[int], None] | None = None
              ) -> tuple[list[ManifestRow], dict[str, Any]]:
    """Sample and split: the manifest rows (status pending) and the dry-run counts.
    ``on_rows(rows scanned)`` reports the scan's progress."""
    found = scan(metadata, spec, settings.seed, on_rows)
    chosen = _select(found, spec, settings)
    classes = {target.name: target for target in spec.classes}
    rows, seen = [], set()
    for number, fields in read_records(metadata, chosen):
        class_name, rule_name = chosen[number]
        if (class_name, fields["image_id"]) in seen:  # one image labelled twice in a class
            continue
        seen.add((class_name, fields["image_id"]))
        target = classes[class_name]
        rule = next(rule for rule in target.rules if rule.name == rule_name)
        rows.append(_row(fields, class_name, rule_name, target.rule_holdout(rule) or ""))
    _disambiguate(rows)
    return _assign_splits(rows, settings), count_available(found, spec, settings)


def _disambiguate(rows: list[ManifestRow]) -> None:
    """Give a distinct file name to images whose ids slug to the same name."""
    names = Counter((row.class_name, PurePosixPath(row.path).name) for row in rows)
    for row in rows:
        path = PurePosixPath(row.path)
        if names[(row.class_name, path.name)] > 1:
            tag = hashlib.sha256(row.image_id.encode("utf-8")).hexdigest()[:8]
            row.path = str(path.with_name(f"{path.stem}-{tag}{path.suffix}"))


def _params(metadata: Path, spec: ClassSpec, settings: DownloadSettings) -> dict[str, Any]:
    stat = metadata.stat()
    spec_text = repr(spec.classes).encode("utf-8")
    params: dict[str, Any] = {
        "metadata": metadata.name, "metadata_bytes": stat.st_size,
        "metadata_mtime": int(stat.st_mtime), "class_spec": spec.source,
        "class_spec_sha256": hashlib.sha256(spec_text).hexdigest(), "seed": settings.seed,
        "split_by": settings.split_by, "fractions": settings.fractions,
        "class_samples_default": settings.class_samples_default,
    }
    params["hash"] = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    return params


def _previous_params(folder: Path) -> dict[str, Any]:
    try:
        report = json.loads((folder / SPLIT_REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    params = report.get("params", {})
    return params if isinstance(params, dict) else {}


def write_split_report(folder: Path, rows: list[ManifestRow], split_by: str,
                       source: str, params: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest.csv`` and ``split_report.json`` (keeping other sources' params)."""
    all_params = {**_previous_params(folder), source: params}
    write_manifest(folder / MANIFEST_FILE, rows)
    report = split_report(rows, split_by, all_params)  # type: ignore[arg-type]
    atomic_write_json(folder / SPLIT_REPORT_FILE, report, indent=2)
    return report


def _carry_over(new_rows: list[ManifestRow], old_rows: list[ManifestRow]) -> None:
    """Keep what an earlier run recorded about the same files."""
    old = {row.path: row for row in old_rows}
    for row in new_rows:
        before = old.get(row.path)
        if before is not None and before.complete:
            row.status, row.bytes, row.sha256 = before.status, before.bytes, before.sha256


def _remove_unselected(old_rows: list[ManifestRow], new_rows: list[ManifestRow],
                       folder: Path) -> None:
    """Delete images an earlier LILA run saved that the new selection (another seed, spec or
    split) no longer lists, so the folders hold exactly the manifest."""
    keep = {row.path for row in new_rows}
    for row in old_rows:
        if row.source == LILA_SOURCE and row.path not in keep:
            (folder / row.path).unlink(missing_ok=True)


def _local_file(row: ManifestRow, local_root: Path) -> Path | None:
    for url in (row.url_gcp, row.url_aws, row.url_azure):
        parts = PurePosixPath(unquote(urlsplit(url).path)).parts[1:] if url else ()
        if ".." in parts:
            continue
        for start in range(len(parts) - MIN_LOCAL_PARTS + 1):
            candidate = local_root.joinpath(*parts[start:])
            # a symlink under LOCAL_ROOT that leads out of it is not the mounted image
            if candidate.is_file() and within(candidate, local_root):
                return candidate
    return None


def _use_local(row: ManifestRow, folder: Path, local_root: Path) -> bool:
    """Link (or copy) the row's image from ``local_root``; True when it was there and valid."""
    source = _local_file(row, local_root)
    if source is None:
        return False
    data = source.read_bytes()
    try:
        verify_image_bytes(data, str(source))
    except ImageLoadError:
        return False
    target = folder / row.path
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}{TEMP_SUFFIX}")
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)
    row.status, row.bytes, row.error = LOCAL, str(len(data)), ""
    row.sha256 = hashlib.sha256(data).hexdigest()
    return True


def _apply(row: ManifestRow, result: FetchResult) -> None:
    if result.status == EXISTING and row.complete:
        return  # keep how it first arrived (ok, local)
    row.status, row.error = result.status, result.error
    row.bytes = "" if result.bytes is None else str(result.bytes)
    row.sha256 = result.sha256 or ""


def fetch_rows(rows: list[ManifestRow], folder: Path, settings: DownloadSettings,
               progress: ProgressFn | None = None,
               checkpoint: Callable[[], None] | None = None) -> None:
    """Bring every row's image to ``folder/row.path``, updating the rows' status in place."""
    local_root = Path(settings.local_root) if settings.local_root else None

    def on_disk(row: ManifestRow) -> bool:
        target = folder / row.path
        return row.complete and row.bytes.isdigit() and target.is_file() \
            and target.stat().st_size == int(row.bytes)

    pending = [row for row in rows if not (local_root and not on_disk(row)
                                           and _use_local(row, folder, local_root))]
    jobs = [FetchJob(target=folder / row.path,
                     urls=[getattr(row, column) for column in settings.mirror_columns
                           if getattr(row, column)],
                     expected_bytes=int(row.bytes) if row.bytes.isdigit() else None,
                     expected_sha256=row.sha256 or None) for row in pending]
    options = FetchOptions(concurrency=settings.concurrency, retries=settings.retries,
                           backoff_s=settings.backoff, timeout_s=settings.timeout,
                           rate_limit=settings.rate_limit, verify=settings.verify)
    done = len(rows) - len(pending)
    last_save = time.monotonic()
    if progress:
        progress(done, len(rows))

    def on_result(index: int, result: FetchResult) -> None:
        nonlocal done, last_save
        _apply(pending[index], result)
        done += 1
        if progress:
            progress(done, len(rows))
        if checkpoint and time.monotonic() - last_save > CHECKPOINT_S:
            checkpoint()
            last_save = time.monotonic()

    fetch_images(jobs, options, on_result)


def summarise(rows: list[ManifestRow], folder: Path, data_root: Path | None) -> dict[str, Any]:
    statuses = Counter(row.status for row in rows)
    failures = [f"{row.path}: {row.error}" for row in rows if row.status == FAILED]
    kinds = Counter(_failure_kind(row.error) for row in rows if row.status == FAILED)

    def shown(path: Path) -> str:
        if data_root is not None:
            try:
                return path.resolve().relative_to(data_root.resolve()).as_posix()
            except ValueError:
                pass
        return str(path)

    """What a run did: paths (relative to ``data_root``), images per status, failures."""
    return {
        "dataset_dir": shown(folder),
        "manifest": shown(folder / MANIFEST_FILE),
        "split_report": shown(folder / SPLIT_REPORT_FILE),
        "images": len(rows),
        "status": dict(sorted(statuses.items())),
        "complete": sum(count for status, count in statuses.items() if status in COMPLETE),
        "failed": statuses.get(FAILED, 0),
        "failure_kinds": dict(kinds.most_common()),
        "failures": failures[:MAX_ERRORS_SHOWN],
    }


def _failure_kind(error: str) -> str:
    """The last mirror's reason without its URL and counts: 'HTTP 404', 'not an image', ..."""
    last = error.rsplit("; ", 1)[-1]
    reason = last.split(": ", 1)[-1] if "://" in last else last
    return reason.split(" (", 1)[0]


@dataclass
class LilaPlan:
    """The sampled rows of a LILA download, written to the manifest, before any fetching."""

    folder: Path
    #: Every manifest row (other sources' too); ``lila`` are this source's.
    rows: list[ManifestRow]
    lila: list[ManifestRow]
    leak_free: bool
    selected: dict[str, int] = field(default_factory=dict)

    def save(self) -> None:
        """Write the manifest as the rows stand now (atomically)."""
        write_manifest(self.folder / MANIFEST_FILE, self.rows)


def plan_download(settings: DownloadSettings, data_root: str | os.PathLike[str],
                  progress: ProgressFn | None = None) -> LilaPlan | dict[str, Any]:
    """Sample and split the LILA rows and write the manifest and split report (the part of
    the stage before fetching; a sharded job runs it once, then fetches in shards).

    Returns:
        The plan; with ``DRY_RUN``, the available and selected counts per class and rule.
    """
    if not settings.metadata:
        raise ValueError("METADATA is required: the LILA metadata CSV or its zip")
    metadata = Path(settings.metadata)
    spec = load_spec(settings.class_spec)
    folder = dataset_dir(data_root, settings.dataset_name)
    params = _params(metadata, spec, settings) if metadata.is_file() else {}
    old_rows = read_manifest(folder / MANIFEST_FILE)
    reuse = (not settings.dry_run and params
             and _previous_params(folder).get(LILA_SOURCE, {}).get("hash") == params["hash"]
             and any(row.source == LILA_SOURCE for row in old_rows))
    if reuse:
        lila_rows = [row for row in old_rows if row.source == LILA_SOURCE]
        counts: dict[str, Any] = {}
    else:
        # While scanning, progress reports nothing done yet; they let a cancelled job stop.
        lila_rows, counts = plan_lila(metadata, spec, settings,
                                      (lambda rows: progress(0, 0)) if progress else None)
        if settings.dry_run:
            return counts
        _carry_over(lila_rows, old_rows)
        _remove_unselected(old_rows, lila_rows, folder)
    rows = [row for row in old_rows if row.source != LILA_SOURCE] + lila_rows
    report = write_split_report(folder, rows, settings.split_by, LILA_SOURCE, params)
    plan = LilaPlan(folder=folder, rows=rows, lila=lila_rows, leak_free=report["leak_free"],
                    selected={name: info["selected"] for name, info in
                              counts.get("classes", {}).items()})
    plan.save()
    return plan


def finish_download(plan: LilaPlan, settings: DownloadSettings,
                    data_root: str | os.PathLike[str]) -> dict[str, Any]:
    """The stage's summary once every row was fetched; subsets published MD results."""
    summary = summarise(plan.lila, plan.folder, Path(data_root))
    summary["leak_free"] = plan.leak_free
    summary["selected"] = plan.selected
    if settings.md_results:
        summary["md_results"] = subset_md_results(settings.md_results, plan.rows, plan.folder)
    return summary


def download_lila(settings: DownloadSettings, data_root: str | os.PathLike[str],
                  progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run the LILA part of the stage; see the module docstring.

    Returns:
        With ``DRY_RUN``: the available and selected counts per class and rule. Otherwise a
        summary: paths (relative to the data root), images per status, ``failed`` and the first
        failures, ``leak_free`` and the md.json matches.

    Raises:
        MetadataError, SpecError, MDResultsError: bad inputs, before anything is downloaded.
    """
    plan = plan_download(settings, data_root, progress)
    if not isinstance(plan, LilaPlan):
        return plan
    try:
        fetch_rows(plan.lila, plan.folder, settings, progress, plan.save)
    finally:
        plan.save()
    return finish_download(plan, settings, data_root)
