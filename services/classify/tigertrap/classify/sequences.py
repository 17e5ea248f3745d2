"""Sequences of camera-trap frames, and smoothing class scores over them.

A camera fires a burst of frames per trigger; one clear frame can settle what the blurred ones
show. Frames are grouped either by a dataset manifest's sequence column (``manifest.csv`` of the
download stage: ``path`` and ``sequence``; ``file``/``sequence_id``/``seq_id`` are accepted too)
or by EXIF ``DateTimeOriginal``: frames of one folder whose capture times are at most
``max_gap_s`` apart form one sequence. Smoothing replaces each detection's class scores with the
mean scores of all classified detections of its sequence.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Hashable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

__all__ = [
    "SequenceFileError",
    "capture_time",
    "group_by_time",
    "read_sequence_file",
    "smooth_scores",
]

PATH_COLUMNS = ("path", "file", "file_name", "image")
SEQUENCE_COLUMNS = ("sequence", "sequence_id", "seq_id")
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
DATETIME = 0x0132
EXIF_TIME_FORMAT = "%Y:%m:%d %H:%M:%S"
#: Times camera clocks write when unset; they would join unrelated frames into one sequence.
EARLIEST_YEAR = 1990

K = TypeVar("K", bound=Hashable)


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


def smooth_scores(scores: Mapping[K, np.ndarray],
                  sequence_of: Mapping[K, str | None]) -> dict[K, np.ndarray]:
    """Replace each key's scores with the mean over all keys of its sequence; keys without a
    sequence keep their own scores."""
    members: dict[str, list[K]] = defaultdict(list)
    for key in scores:
        sequence = sequence_of.get(key)
        if sequence is not None:
            members[sequence].append(key)
    smoothed = dict(scores)
    for keys in members.values():
        mean = np.mean([scores[key] for key in keys], axis=0)
        for key in keys:
            smoothed[key] = mean
    return smoothed
