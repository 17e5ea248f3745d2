"""Reviewed crops as a training set that the train stage takes directly (``SNIPS_CSV``).

:func:`export_training_set` writes, under an output folder:

* ``snips/<job>/<image path>-<detection index>.jpg``: the crop of every detection whose
  reviewers agree on a class of the job's class map (the snip layout: crops named after their
  detection, the image's sub-folders kept), made by :func:`tigertrap.core.crops.crop_detection`,
  the crop training and classify share;
* ``snips.csv``: ``snip, image, detection_index, bbox_*, label, split, location, source``;
  rows of a merged training set come first, their paths rewritten relative to the new folder;
* ``class_map.yaml``: the class order (the merged set's, else the job's), which train reads
  beside ``SNIPS_CSV``;
* ``export_report.json``: counts per split and label, what was left out and why, and the
  locations of each split (evidence that no location lies in two splits).

Reviewed crops are split by camera location with :func:`tigertrap.core.group_splits.assign_groups`
(the download stage's rule): a location's crops all go to one of ``train``, ``val`` or
``review`` — the reviewed frames held out for comparing bundles, which train's evaluation does
not read. When the merged set has a ``location`` column, a location it already places keeps that
split. Detections without an agreed label (conflicts), or called ``unsure`` or
``not_an_animal``, are left out and counted; so is a label the merged set's class map lacks.
"""

from __future__ import annotations

import csv
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from io import BytesIO, StringIO
from pathlib import Path, PurePosixPath
from typing import Any

from tigertrap.classify.review.store import ReviewStore, agreed_label, current_verdicts
from tigertrap.core.class_map import CLASS_MAP_FILE, ClassMap
from tigertrap.core.crops import crop_detection
from tigertrap.core.group_splits import assign_groups
from tigertrap.core.images import ImageLoadError, open_image
from tigertrap.core.paths import DataRoot, atomic_write_bytes, atomic_write_text

__all__ = ["EXPORT_REPORT", "REVIEW_SPLIT", "SNIPS_CSV", "ExportError", "ExportSummary",
           "export_training_set"]

SNIPS_CSV = "snips.csv"
EXPORT_REPORT = "export_report.json"
#: The split of reviewed frames held out for comparing bundles (train reads train/val/test/test2).
REVIEW_SPLIT = "review"
DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.15, REVIEW_SPLIT: 0.15}
COLUMNS = ["snip", "image", "detection_index", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "label",
           "split", "location", "source"]
PATH_COLUMNS = ("snip", "snip_file", "crop", "file", "path", "image")
LABEL_COLUMNS = ("label", "class", "species")
SPLITS = ("train", "val", "test", "test2", REVIEW_SPLIT)
JPEG_QUALITY = 95


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says what to change."""


@dataclass
class ExportSummary:
    """What an export wrote: counts per split and label, what was left out and why."""

    folder: str
    rows: int
    reviewed: dict[str, dict[str, int]]
    merged: dict[str, int]
    left_out: dict[str, int]

    def as_json(self) -> dict[str, Any]:
        return {"folder": self.folder, "rows": self.rows, "reviewed": self.reviewed,
                "merged": self.merged, "left_out": self.left_out}


def _column(fields: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {name.lower(): name for name in fields}
    return next((lowered[name] for name in names if name in lowered), None)


def _existing_rows(source: Path, out_dir: Path) -> tuple[list[dict[str, str]], ClassMap | None]:
    """Rows of a training set to merge: a snips CSV, or a folder of ``<split>/<class>/``."""
    rows: list[dict[str, str]] = []
    if source.is_file():
        with source.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = list(reader.fieldnames or [])
            path_col, label_col = _column(fields, PATH_COLUMNS), _column(fields, LABEL_COLUMNS)
            split_col, location_col = _column(fields, ("split",)), _column(fields, ("location",))
            if not (path_col and label_col and split_col):
                raise ExportError(f"{source.name}: a training set CSV needs path, label and "
                                  "split columns")
            for row in reader:
                if not (row.get(path_col) and row.get(label_col) and row.get(split_col)):
                    continue
                path = os.path.relpath(source.parent / row[path_col], out_dir)
                rows.append({"snip": Path(path).as_posix(), "label": row[label_col],
                             "split": row[split_col],
                             "location": row.get(location_col or "", "") or "",
                             "source": "merged"})
        folder = source.parent
    elif source.is_dir():
        for split in SPLITS:
            for image in sorted((source / split).glob("*/*")):
                if image.is_file():
                    rows.append({"snip": Path(os.path.relpath(image, out_dir)).as_posix(),
                                 "label": image.parent.name, "split": split, "location": "",
                                 "source": "merged"})
        folder = source
    else:
        raise ExportError(f"the training set to merge, {source}, does not exist")
    class_map = ClassMap.load(folder / CLASS_MAP_FILE) if (folder / CLASS_MAP_FILE).is_file() \
        else None
    return rows, class_map


def _reviewed(store: ReviewStore, jobs: Iterable[str]) -> tuple[list[dict[str, Any]], Counter]:
    """Detections with an agreed class label, and the count of those left out by reason."""
    chosen, left_out = [], Counter()
    for name in jobs:
        job = store.job(name)
        history = store.job_history(name)
        for row in store.detections(name):
            current = current_verdicts(history[row["id"]])
            if not current:
                continue
            label = agreed_label(current)
            if label is None:
                left_out["conflict"] += 1
            elif label not in job["classes"]:
                left_out[label] += 1
            else:
                chosen.append({**row, "label": label, "job": name,
                               "image_base": job["image_base"]})
    return chosen, left_out


def _snip_name(job: str, file: str, index: int) -> str:
    path = PurePosixPath(file.replace("\\", "/"))
    return str(PurePosixPath("snips", job, path.parent, f"{path.stem}-{index}.jpg"))


def _write_crop(root: DataRoot, row: Mapping[str, Any], target: Path, size: int,
                method: str) -> None:
    frame = open_image(root.resolve(f"{row['image_base']}/{row['file']}", must_exist=True))
    crop = crop_detection(frame, tuple(row["bbox"]), size, method)
    buffer = BytesIO()
    crop.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    atomic_write_bytes(target, buffer.getvalue())


def export_training_set(store: ReviewStore, data_root: str | os.PathLike[str], jobs: list[str],
                        output: str, *, merge_with: str | None = None,
                        fractions: Mapping[str, float] | None = None, seed: int = 0,
                        snip_size: int = 600, crop_method: str = "exact") -> ExportSummary:
    """Write the training set of ``jobs``' verdicts to ``output`` (relative to the data root),
    merged with the training set ``merge_with`` (a snips CSV or a split/class folder) if given.

    Raises:
        ExportError: nothing reviewed to export, a merge source that is not a training set,
            or fractions that do not name train, val and review.
        tigertrap.classify.review.store.ReviewJobNotFound: an unknown job.
        tigertrap.core.paths.PathOutsideDataRoot: a path outside the data root.
    """
    root = DataRoot(data_root)
    out_dir = root.resolve(output)
    fractions = dict(fractions or DEFAULT_FRACTIONS)
    if set(fractions) != set(DEFAULT_FRACTIONS) or abs(sum(fractions.values()) - 1) > 1e-6:
        raise ExportError(f"fractions must give {', '.join(DEFAULT_FRACTIONS)} summing to 1")
    reviewed, left_out = _reviewed(store, jobs)
    merged: list[dict[str, str]] = []
    class_map = ClassMap(store.job(jobs[0])["classes"]) if jobs else None
    if merge_with:
        merged, merged_map = _existing_rows(root.resolve(merge_with, must_exist=True), out_dir)
        class_map = merged_map or class_map
    if class_map is None or not (reviewed or merged):
        raise ExportError("no reviewed detection with an agreed class to export: review some "
                          "first (conflicts, unsure and not_an_animal are left out)")
    unknown = [row for row in reviewed if row["label"] not in class_map.names]
    for row in unknown:
        left_out[f"not in the class map: {row['label']}"] += 1
    reviewed = [row for row in reviewed if row["label"] in class_map.names]
    pinned = {row["location"]: row["split"] for row in merged if row["location"]}
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in reviewed:
        if row["location"] not in pinned:
            counts[row["location"]][row["label"]] += 1
    split_of = {**assign_groups(counts, fractions, seed), **pinned}
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [dict.fromkeys(COLUMNS, "") | row for row in merged]
    per_split: dict[str, Counter[str]] = defaultdict(Counter)
    for row in reviewed:
        snip = _snip_name(row["job"], row["file"], row["detection_index"])
        try:
            _write_crop(root, row, out_dir / snip, snip_size, crop_method)
        except (ImageLoadError, OSError) as error:
            left_out[f"frame unreadable: {type(error).__name__}"] += 1
            continue
        split = split_of[row["location"]]
        per_split[split][row["label"]] += 1
        x, y, w, h = row["bbox"]
        rows.append({"snip": snip, "image": f"{row['image_base']}/{row['file']}",
                     "detection_index": row["detection_index"], "bbox_x": x, "bbox_y": y,
                     "bbox_w": w, "bbox_h": h, "label": row["label"], "split": split,
                     "location": row["location"], "source": f"review:{row['job']}"})
    _write_csv(out_dir / SNIPS_CSV, rows)
    class_map.save(out_dir / CLASS_MAP_FILE)
    summary = ExportSummary(
        folder=root.relative(out_dir), rows=len(rows),
        reviewed={split: dict(sorted(c.items())) for split, c in sorted(per_split.items())},
        merged=dict(sorted(Counter(row["split"] for row in merged).items())),
        left_out=dict(sorted(left_out.items())))
    locations = defaultdict(set)
    for row in rows:
        if row["location"]:
            locations[row["split"]].add(row["location"])
    report = {**summary.as_json(), "jobs": jobs, "fractions": fractions, "seed": seed,
              "locations": {split: sorted(found) for split, found in sorted(locations.items())}}
    atomic_write_text(out_dir / EXPORT_REPORT, json.dumps(report, indent=2))
    return summary


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())
