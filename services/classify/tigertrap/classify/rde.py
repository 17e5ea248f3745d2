"""Repeat-detection elimination (RDE): MegaDetector's, over a MegaDetector file.

MegaDetector repeats false positives on the same rock or stump at one camera for weeks. Its
package finds them (``megadetector.postprocessing.repeat_detection_elimination.
repeat_detections_core``): within each camera, boxes of one category whose IoU with each other
reaches ``IOU_THRESHOLD`` on at least ``OCCURRENCE_THRESHOLD`` images, with confidence within
``MIN_CONF``-``MAX_CONF`` and area at most ``MAX_SUSPICIOUS_SIZE`` of the image, are suspicious.
A camera is the image's folder (``FOLDER_LEVELS`` folders up), or its ``location`` in a download
manifest (``CAMERA=manifest``).

The workflow is MegaDetector's, in two steps:

1. :func:`find_repeats` writes a review folder (``filtering_<time>/`` under ``OUTPUT_DIR``): one
   example image per suspicious detection (``dirNNNN_detNNNN_nNNNN.jpg``: the box drawn on its
   most confident frame, beside crops of its other occurrences), MegaDetector's
   ``detectionIndex.json`` and tigertrap's ``suspicious.csv`` (one row per suspicious
   detection: example, camera, category, box, occurrences).
2. The reviewer deletes the examples that show real animals; :func:`remove_repeats` then writes
   an MD file (format 1.6) without every occurrence of the examples still in the folder, or of
   all of them with ``accept_all``. The written file passes MegaDetector's validator.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tigertrap.classify.sequences import PATH_COLUMNS, SequenceFileError
from tigertrap.core.config import ConfigError, StageSettings
from tigertrap.core.md_results import (
    MDResultsError,
    read_md_results,
    write_md_results,
)
from tigertrap.core.megadetector import megadetector_output_to_stderr
from tigertrap.core.paths import atomic_write_text

__all__ = [
    "DETECTION_INDEX",
    "SUSPICIOUS_CSV",
    "ManifestCameras",
    "RepeatDetectionSettings",
    "RepeatRemoval",
    "RepeatReview",
    "find_repeats",
    "remove_repeats",
]

#: MegaDetector's index of the suspicious detections in a review folder.
DETECTION_INDEX = "detectionIndex.json"
SUSPICIOUS_CSV = "suspicious.csv"
SUSPICIOUS_COLUMNS = ["example", "camera", "category", "bbox_x", "bbox_y", "bbox_w", "bbox_h",
                      "occurrences", "max_conf", "files"]
LOCATION_COLUMNS = ("location", "location_id", "camera", "deployment", "deployment_id")
#: Files listed per suspicious detection in suspicious.csv (the index has them all).
FILES_LISTED = 5


class RepeatDetectionSettings(StageSettings):
    """The keys of ``tigertrap rde`` (MegaDetector's option names in brackets)."""

    md_file: Path | None = Field(default=None, description="MegaDetector file to clean")
    output_dir: Path | None = Field(default=None, description="default: <MD file folder>/rde")
    output_md: str = Field(default="md_rde.json", description="cleaned MD file name")
    occurrence_threshold: int = Field(
        default=20, ge=2, description="images a box must repeat on [occurrenceThreshold]")
    iou_threshold: float = Field(default=0.9, gt=0.0, le=1.0,
                                 description="IoU at which two boxes are the same [iouThreshold]")
    min_conf: float = Field(default=0.1, ge=0.0, le=1.0,
                            description="less confident boxes are ignored [confidenceMin]")
    max_conf: float = Field(default=1.0, ge=0.0, le=1.0,
                            description="more confident boxes are ignored [confidenceMax]")
    min_suspicious_size: float = Field(
        default=0.0, ge=0.0, le=1.0,
        description="smaller boxes (area fraction) are ignored [minSuspiciousDetectionSize]")
    max_suspicious_size: float = Field(
        default=0.2, ge=0.0, le=1.0,
        description="larger boxes (area fraction) are ignored [maxSuspiciousDetectionSize]")
    exclude_categories: str = Field(
        default="", description="comma-separated detection category ids never suspicious, "
                                "e.g. 2,3 [excludeClasses]")
    category_agnostic: bool = Field(
        default=False, description="boxes of different categories can be the same "
                                   "[categoryAgnosticComparisons]")
    camera: Literal["folder", "manifest"] = Field(
        default="folder", description="what a camera is: the image's folder or the manifest's "
                                      "location")
    folder_levels: int = Field(default=0, ge=0,
                               description="folders up from the image's [nDirLevelsFromLeaf]")
    manifest: Path | None = Field(default=None,
                                  description="CSV with path and location columns (CAMERA="
                                              "manifest)")
    workers: int = Field(default=2, ge=1, description="threads comparing and rendering "
                                                      "[nWorkers]")


@dataclass
class RepeatReview:
    """What :func:`find_repeats` wrote: the review folder and what it holds."""

    review_dir: Path
    suspicious_csv: Path
    suspicious: int
    occurrences: int

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


@dataclass
class RepeatRemoval:
    """What :func:`remove_repeats` wrote and removed."""

    md_file: Path
    removed_detections: int
    images_changed: int
    kept_examples: int
    dropped_examples: int

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


class ManifestCameras:
    """MegaDetector's ``customDirNameFunction``: an MD file name -> its camera (the manifest's
    location; the image's folder when the manifest does not list it). A plain class so that
    MegaDetector's detection index (jsonpickle) stores and restores it."""

    def __init__(self, locations: dict[str, str]) -> None:
        self.locations = locations

    def __call__(self, file: str) -> str:
        return self.locations.get(file) or os.path.dirname(file.replace("\\", "/"))


def _read_locations(manifest: Path, md_file: Path) -> dict[str, str]:
    """``{MD file name (relative to the MD file's folder, forward slashes): location}``."""
    try:
        with open(manifest, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            header = {name.strip().lower(): name for name in reader.fieldnames or []}
            path_column = next((header[n] for n in PATH_COLUMNS if n in header), None)
            location_column = next((header[n] for n in LOCATION_COLUMNS if n in header), None)
            if path_column is None or location_column is None:
                raise SequenceFileError(
                    f"{manifest}: needs a path column ({', '.join(PATH_COLUMNS)}) and a "
                    f"location column ({', '.join(LOCATION_COLUMNS)}); found "
                    f"{', '.join(header.values())}")
            rows = [(row[path_column], row[location_column]) for row in reader
                    if row.get(path_column) and row.get(location_column)]
    except FileNotFoundError:
        raise ConfigError("MANIFEST", f"{manifest} does not exist") from None
    base = md_file.parent.resolve()
    locations = {}
    for path, location in rows:
        image = (manifest.parent / path).resolve()
        try:
            locations[image.relative_to(base).as_posix()] = location
        except ValueError:
            locations[image.as_posix()] = location
    return locations


def _md_file(settings: RepeatDetectionSettings) -> Path:
    if settings.md_file is None:
        raise ConfigError("MD_FILE", "is required: the MegaDetector file to clean")
    if not settings.md_file.is_file():
        raise ConfigError("MD_FILE", f"{settings.md_file} does not exist")
    read_md_results(settings.md_file)  # a malformed file stops here, with its reason
    return settings.md_file


def _categories(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError("EXCLUDE_CATEGORIES",
                          f"{text!r}: write detection category ids, e.g. 2,3") from None


def _options(settings: RepeatDetectionSettings, md_file: Path) -> Any:
    from megadetector.postprocessing.repeat_detection_elimination.repeat_detections_core import (
        RepeatDetectionOptions,
    )

    options = RepeatDetectionOptions()
    options.imageBase = str(md_file.parent.resolve())
    options.outputBase = str(_output_dir(settings, md_file).resolve())
    options.occurrenceThreshold = settings.occurrence_threshold
    options.iouThreshold = settings.iou_threshold
    options.confidenceMin = settings.min_conf
    options.confidenceMax = settings.max_conf
    options.minSuspiciousDetectionSize = settings.min_suspicious_size
    options.maxSuspiciousDetectionSize = settings.max_suspicious_size
    options.excludeClasses = _categories(settings.exclude_categories)
    options.categoryAgnosticComparisons = settings.category_agnostic
    options.nWorkers = settings.workers
    # Always a pool (of threads): megadetector 10.0.28's serial comparison path fails
    # (UnboundLocalError on ``pool``); a pool of one thread is serial anyway.
    options.bParallelizeComparisons = options.bParallelizeRendering = True
    options.parallelizationUsesThreads = True
    options.bPrintMissingImageWarnings = False
    if settings.camera == "manifest":
        if settings.manifest is None:
            raise ConfigError("MANIFEST", "is required when CAMERA=manifest")
        options.customDirNameFunction = ManifestCameras(_read_locations(settings.manifest,
                                                                        md_file))
    else:
        options.nDirLevelsFromLeaf = settings.folder_levels
    return options


def _output_dir(settings: RepeatDetectionSettings, md_file: Path) -> Path:
    return settings.output_dir or md_file.parent / "rde"


def _suspicious_rows(results: Any) -> list[dict[str, Any]]:
    rows = []
    for per_camera in results.suspicious_detections:
        for location in per_camera:
            instances = sorted(location.instances, key=lambda i: -i.confidence)
            x, y, w, h = (round(float(v), 4) for v in location.bbox[:4])
            rows.append({
                "example": location.sampleImageRelativeFileName,
                "camera": location.relativeDir, "category": location.category,
                "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h,
                "occurrences": len(instances),
                "max_conf": round(float(instances[0].confidence), 3),
                "files": " ".join(i.filename for i in instances[:FILES_LISTED])})
    return rows


def _csv_text(columns: list[str], rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def find_repeats(settings: RepeatDetectionSettings) -> RepeatReview:
    """Find the repeated detections of ``settings.md_file`` and write the review folder (see
    the module docstring).

    Raises:
        ConfigError: a key is missing or names nothing.
        MDResultsError: the MD file is not MegaDetector output.
        SequenceFileError: the manifest lacks a path or location column.
    """
    from megadetector.postprocessing.repeat_detection_elimination.repeat_detections_core import (
        find_repeat_detections,
    )

    md_file = _md_file(settings)
    options = _options(settings, md_file)
    with megadetector_output_to_stderr():
        results = find_repeat_detections(str(md_file), None, options)
    review_dir = Path(results.filterFile).parent
    rows = _suspicious_rows(results)
    suspicious_csv = review_dir / SUSPICIOUS_CSV
    atomic_write_text(suspicious_csv, _csv_text(SUSPICIOUS_COLUMNS, rows))
    return RepeatReview(review_dir, suspicious_csv, len(rows),
                        sum(row["occurrences"] for row in rows))


def _index_file(review_dir: Path) -> Path:
    index = review_dir / DETECTION_INDEX if review_dir.is_dir() else review_dir
    if not index.is_file():
        raise ConfigError("REVIEW_DIR", f"{review_dir} holds no {DETECTION_INDEX}: give the "
                                        "folder `tigertrap rde find` wrote")
    return index


def _examples(index: Path) -> list[str]:
    """The example file names the index lists (without decoding MegaDetector's objects)."""
    document = json.loads(index.read_text(encoding="utf-8"))
    names = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "sampleImageRelativeFileName" in node:
                names.append(node["sampleImageRelativeFileName"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document.get("suspicious_detections", []))
    return [name for name in names if name]


def _negative_conf_indices(md_output: Path) -> list[set[int]]:
    """Per image (in file order), the detections MegaDetector marked with a negative conf."""
    document = json.loads(md_output.read_text(encoding="utf-8"))
    return [{number for number, detection in enumerate(entry.get("detections") or [])
             if detection["conf"] < 0} for entry in document["images"]]


def remove_repeats(md_file: Path, review_dir: Path, output: Path | None = None, *,
                   accept_all: bool = False,
                   validate: Callable[[Path], None] | None = None) -> RepeatRemoval:
    """Write ``output`` (default: ``md_rde.json`` beside ``md_file``): ``md_file`` without
    every occurrence of the suspicious detections whose example is still in ``review_dir``
    (every one with ``accept_all``). ``validate(path)`` checks the written file (default:
    MegaDetector's validator).

    Raises:
        ConfigError: the review folder holds no detection index.
        MDResultsError: the MD file is not MegaDetector output, or the written file does not
            pass the validator.
    """
    from megadetector.postprocessing.repeat_detection_elimination.repeat_detections_core import (
        RepeatDetectionOptions,
        find_repeat_detections,
    )

    results = read_md_results(md_file)
    index = _index_file(review_dir)
    examples = _examples(index)
    kept = [name for name in examples if (index.parent / name).is_file()]
    output = output or md_file.parent / "md_rde.json"
    with tempfile.TemporaryDirectory(prefix="rde-") as scratch:
        options = RepeatDetectionOptions()
        options.filterFileToLoad = str(index)
        if accept_all:
            listed = Path(scratch) / "accepted.txt"
            listed.write_text("\n".join(examples) + "\n", encoding="utf-8")
            options.filteredFileListToLoad = str(listed)
        marked = Path(scratch) / "marked.json"
        with megadetector_output_to_stderr():
            find_repeat_detections(str(md_file), str(marked), options)
        negatives = _negative_conf_indices(marked)
    if len(negatives) != len(results.images):
        raise MDResultsError(f"{md_file}: changed since `tigertrap rde find` ({len(negatives)} "
                             f"images in the index's pass, {len(results.images)} now)")
    removed = changed = 0
    for entry, drop in zip(results.images, negatives, strict=True):
        if drop and entry.detections:
            entry.detections = [d for n, d in enumerate(entry.detections) if n not in drop]
            removed += len(drop)
            changed += 1
    results.info["repeat_detection_elimination"] = {
        "review_dir": str(index.parent), "accept_all": accept_all,
        "suspicious": len(examples), "kept_examples": len(kept) if not accept_all else
        len(examples), "removed_detections": removed}
    write_md_results(results, output)
    (validate or _validate)(output)
    accepted = len(examples) if accept_all else len(kept)
    return RepeatRemoval(output, removed, changed, accepted, len(examples) - accepted)


def _validate(path: Path) -> None:
    """MegaDetector's validator on a written file; its complaints become an MDResultsError."""
    from megadetector.postprocessing.validate_batch_results import (
        ValidateBatchResultsOptions,
        validate_batch_results,
    )

    options = ValidateBatchResultsOptions()
    options.check_image_existence = False
    options.raise_errors = True
    with megadetector_output_to_stderr():
        try:
            validate_batch_results(str(path), options)
        except Exception as error:  # the validator raises bare ValueError/AssertionError
            raise MDResultsError(f"{path}: MegaDetector's validator refuses it: {error}") \
                from error
