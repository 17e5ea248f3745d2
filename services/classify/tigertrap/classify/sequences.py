"""Sequences of camera-trap frames, and smoothing class scores over them.

A camera fires a burst of frames per trigger; one clear frame can settle what the blurred ones
show. Frames are grouped either by a dataset manifest's sequence column (``manifest.csv`` of the
download stage: ``path`` and ``sequence``; ``file``/``sequence_id``/``seq_id`` are accepted too)
or by EXIF ``DateTimeOriginal``: frames of one folder whose capture times are at most
``max_gap_s`` apart form one sequence.

Smoothing is MegaDetector's (``megadetector.postprocessing.classification_postprocessing``):
within an image, and then within a sequence, a dominant class with enough confident detections
relabels the few confident detections of other classes ("other" classes more readily); a
sequence holding one clear deer and one clear tiger keeps both. tigertrap adds one rule: a
detection its tiger rule flags is never relabelled.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from tigertrap.core.megadetector import megadetector_output_to_stderr

if TYPE_CHECKING:  # megadetector is imported only when smoothing is asked for
    from megadetector.postprocessing.classification_postprocessing import (
        ClassificationSmoothingOptions,
    )

__all__ = [
    "SequenceFileError",
    "capture_time",
    "group_by_time",
    "read_sequence_file",
    "smooth_scores",
    "smoothing_options",
]

PATH_COLUMNS = ("path", "file", "file_name", "image")
SEQUENCE_COLUMNS = ("sequence", "sequence_id", "seq_id")
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
DATETIME = 0x0132
EXIF_TIME_FORMAT = "%Y:%m:%d %H:%M:%S"
#: Times camera clocks write when unset; they would join unrelated frames into one sequence.
EARLIEST_YEAR = 1990

#: The one detection category of the documents handed to MegaDetector's smoothing.
SMOOTHED_CATEGORY = "1"

Key = tuple[Hashable, int]  # (image, detection)


class SequenceFileError(ValueError):
    """A sequence CSV without a path or sequence column."""


def _pick(header: list[str], names: tuple[str, ...], path: Path) -> str:
    lowered = {column.strip().lower(): column for column in header}
    for name in names:
        if name in lowered:
            return lowered[name]
    raise SequenceFileError(f"{path}: needs one of the columns {', '.join(names)}; "
                            f"found {', '.join(header)}")


def read_sequence_file(path: Path) -> dict[Path, str]:
    """``{resolved image path: sequence}`` from a CSV whose paths are relative to its folder.

    Rows with an empty sequence are left out (those frames stand alone).

    Raises:
        SequenceFileError: a required column is missing.
        FileNotFoundError: no such file.
    """
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        path_column = _pick(header, PATH_COLUMNS, path)
        sequence_column = _pick(header, SEQUENCE_COLUMNS, path)
        sequences = {}
        for row in reader:
            sequence = (row.get(sequence_column) or "").strip()
            if sequence and row.get(path_column):
                sequences[(path.parent / row[path_column]).resolve()] = sequence
    return sequences


def _parse_time(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.strptime(text.strip().rstrip("\x00")[:19], EXIF_TIME_FORMAT)
    except ValueError:
        return None
    return moment if moment.year >= EARLIEST_YEAR else None


def capture_time(path: Path) -> datetime | None:
    """The frame's EXIF ``DateTimeOriginal`` (else ``DateTime``); None when absent or invalid.

    Reads only the file's header.
    """
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            original = exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL)
            return _parse_time(original) or _parse_time(exif.get(DATETIME))
    except Exception:  # an unreadable header simply has no time; the image itself may be fine
        return None


def group_by_time(times: Mapping[Path, datetime | None], max_gap_s: float) -> dict[Path, str]:
    """Sequences from capture times: within one folder, sorted by time, a new sequence starts
    whenever the gap to the previous frame exceeds ``max_gap_s``. Frames without a time are
    left out (they stand alone)."""
    by_folder: dict[Path, list[tuple[datetime, Path]]] = defaultdict(list)
    for image, moment in times.items():
        if moment is not None:
            by_folder[image.parent].append((moment, image))
    sequences: dict[Path, str] = {}
    for folder, frames in sorted(by_folder.items()):
        frames.sort()
        number, previous = 0, None
        for moment, image in frames:
            if previous is not None and (moment - previous).total_seconds() > max_gap_s:
                number += 1
            sequences[image] = f"{folder.as_posix()}#{number}"
            previous = moment
    return sequences


def smoothing_options(*, min_dominant: int, max_nondominant: int, min_dominant_over_other: int,
                      other_classes: Iterable[str], classification_threshold: float,
                      detection_threshold: float) -> ClassificationSmoothingOptions:
    """MegaDetector's :class:`ClassificationSmoothingOptions` with tigertrap's keys set (the
    taxonomic options stay at MegaDetector's defaults: they act only on category descriptions,
    which tigertrap's class maps do not carry)."""
    from megadetector.postprocessing.classification_postprocessing import (
        ClassificationSmoothingOptions,
    )

    options = ClassificationSmoothingOptions()
    options.min_detections_to_overwrite_secondary = min_dominant
    options.max_detections_nondominant_class = max_nondominant
    options.min_detections_to_overwrite_other = min_dominant_over_other
    options.other_category_names = [name for name in other_classes if name]
    options.classification_confidence_threshold = classification_threshold
    options.detection_confidence_threshold = detection_threshold
    options.add_pre_smoothing_description = False
    options.modify_in_place = True
    options.detection_category_names_to_smooth = ["animal"]
    return options


def _as_md(scores: Mapping[Key, np.ndarray], confs: Mapping[Key, float],
           class_names: Sequence[str]) -> tuple[dict[str, Any], list[Key]]:
    """An in-memory MD document holding each detection's top class, as MegaDetector's
    smoothing reads it; also the keys in the order of its detections."""
    per_image: dict[Hashable, list[Key]] = defaultdict(list)
    for key in sorted(scores):
        per_image[key[0]].append(key)
    order: list[Key] = []
    images = []
    for image, keys in per_image.items():
        detections = []
        for key in keys:
            top = int(np.argmax(scores[key]))
            detections.append({"category": SMOOTHED_CATEGORY, "conf": float(confs[key]),
                               "bbox": [0.0, 0.0, 1.0, 1.0],
                               "classifications": [[str(top), float(scores[key][top])]]})
            order.append(key)
        images.append({"file": str(image), "detections": detections})
    document = {"info": {"format_version": "1.4"},
                "detection_categories": {SMOOTHED_CATEGORY: "animal"},
                "classification_categories": {str(i): n for i, n in enumerate(class_names)},
                "images": images}
    return document, order


def smooth_scores(scores: Mapping[Key, np.ndarray], confs: Mapping[Key, float],
                  sequence_of: Mapping[Key, str | None], class_names: Sequence[str],
                  options: ClassificationSmoothingOptions, *, image_level: bool = True,
                  keep: Callable[[np.ndarray], bool] | None = None) -> dict[Key, np.ndarray]:
    """Smooth the top class of each detection with MegaDetector's classification smoothing:
    first within each image (``image_level``), then within each sequence (keys whose
    ``sequence_of`` is set; an image's sequence is that of its first detection).

    Keys are ``(image, detection)``; ``confs`` holds the detections' MD confidences. MegaDetector
    relabels a detection and keeps its confidence: here a relabelled detection's scores of its
    old and new top class swap places, so the new class leads with that confidence and the
    scores still sum to 1. A detection for which ``keep(raw scores)`` is true (tigertrap: the
    tiger flag) keeps its own scores: smoothing never removes a tiger.
    """
    from megadetector.postprocessing.classification_postprocessing import (
        smooth_classification_results_image_level,
        smooth_classification_results_sequence_level,
    )

    document, order = _as_md(scores, confs, class_names)
    if image_level:
        with megadetector_output_to_stderr():
            smooth_classification_results_image_level(document, options=options)
    image_sequences: dict[str, str] = {}
    for key in order:
        sequence = sequence_of.get(key)
        if sequence is not None:
            image_sequences.setdefault(str(key[0]), sequence)
    if image_sequences:
        cct_images = [{"file_name": file, "seq_id": sequence}
                      for file, sequence in image_sequences.items()]
        with megadetector_output_to_stderr():
            smooth_classification_results_sequence_level(document, cct_images, options=options)
    labels = (int(detection["classifications"][0][0])
              for image in document["images"] for detection in image["detections"])
    smoothed = dict(scores)
    for key, label in zip(order, labels, strict=True):
        raw = scores[key]
        top = int(np.argmax(raw))
        if label == top or (keep is not None and keep(raw)):
            continue
        swapped = raw.copy()
        swapped[[top, label]] = raw[[label, top]]
        smoothed[key] = swapped
    return smoothed
