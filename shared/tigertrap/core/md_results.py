"""MegaDetector batch output: the interchange format between stages.

Reads every real variant in the field (formats 1.0-1.6, absolute or relative ``file`` paths,
ascending or descending detection order, ``max_detection_conf``) into typed objects, and always
writes format 1.6 as MegaDetector's own validator
(``megadetector.postprocessing.validate_batch_results``) expects it.

Reading keeps each image's detections in the order of the file, because snip names crops by a
detection's index *as written in the file*. Writing sorts detections by confidence, descending,
as format 1.6 requires; code that pairs indices with a written file re-reads what it wrote.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tigertrap.core.paths import atomic_write_json

__all__ = [
    "ANIMAL",
    "DEFAULT_DETECTION_CATEGORIES",
    "FORMAT_VERSION",
    "PERSON",
    "VEHICLE",
    "Detection",
    "ImageResult",
    "MDResults",
    "MDResultsError",
    "locate_image",
    "now_timestamp",
    "parse_md_results",
    "read_md_results",
    "relative_file_name",
    "to_json",
    "write_md_results",
]

FORMAT_VERSION = "1.6"
ANIMAL, PERSON, VEHICLE = "1", "2", "3"
DEFAULT_DETECTION_CATEGORIES = {ANIMAL: "animal", PERSON: "person", VEHICLE: "vehicle"}

CONF_DECIMALS = 3
BBOX_DECIMALS = 4


class MDResultsError(ValueError):
    """A MegaDetector file that cannot be read; the message names the file and the problem."""


class Detection(BaseModel):
    """One box: ``bbox`` is ``[x_min, y_min, width, height]`` normalised to 0-1."""

    model_config = ConfigDict(extra="allow")

    category: str
    conf: float
    bbox: tuple[float, float, float, float]
    classifications: list[tuple[str, float]] | None = None

    @field_validator("category", mode="before")
    @classmethod
    def _category_as_string(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value

    @property
    def top_class(self) -> tuple[str, float] | None:
        """The highest-scoring classification, if any."""
        if not self.classifications:
            return None
        return max(self.classifications, key=lambda pair: pair[1])


class ImageResult(BaseModel):
    """One image entry: ``detections`` is None exactly when ``failure`` says why."""

    model_config = ConfigDict(extra="allow")

    file: str
    detections: list[Detection] | None = None
    failure: str | None = None
    width: int | None = None
    height: int | None = None
    datetime: str | None = None

    @property
    def failed(self) -> bool:
        return self.failure is not None


class MDResults(BaseModel):
    """A whole batch output file."""

    model_config = ConfigDict(extra="allow")

    info: dict[str, Any] = Field(default_factory=dict)
    detection_categories: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_DETECTION_CATEGORIES))
    classification_categories: dict[str, str] | None = None
    classification_category_descriptions: dict[str, str] | None = None
    images: list[ImageResult] = Field(default_factory=list)

    @field_validator("detection_categories", "classification_categories",
                     "classification_category_descriptions", mode="before")
    @classmethod
    def _keys_as_strings(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(key): name for key, name in value.items()}
        return value

    def by_file(self) -> dict[str, ImageResult]:
        """Entries keyed by their ``file`` value."""
        return {entry.file: entry for entry in self.images}


def now_timestamp() -> str:
    """A completion time in the form MegaDetector writes (``YYYY-MM-DD HH:MM:SS``, UTC)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def read_md_results(path: str | os.PathLike[str]) -> MDResults:
    """Read a MegaDetector batch output file of any format version.

    Raises:
        MDResultsError: the file is missing, not JSON, or not MegaDetector output; the message
            says which field is wrong.
    """
    source = Path(path)
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise MDResultsError(f"{source}: MegaDetector file not found") from error
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MDResultsError(f"{source}: not a JSON file ({error})") from error
    return parse_md_results(raw, source=str(source))


def parse_md_results(raw: Any, *, source: str = "<data>") -> MDResults:
    """Validate already-decoded JSON as MegaDetector output (see :func:`read_md_results`)."""
    if not isinstance(raw, dict) or "images" not in raw:
        raise MDResultsError(f"{source}: not MegaDetector output (no 'images' list)")
    try:
        return MDResults.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise MDResultsError(f"{source}: field {where}: {first['msg']}") from error


def _detection_json(detection: Detection) -> dict[str, Any]:
    data: dict[str, Any] = {
        "category": detection.category,
        "conf": round(float(detection.conf), CONF_DECIMALS),
        "bbox": [round(float(value), BBOX_DECIMALS) for value in detection.bbox],
    }
    if detection.classifications is not None:
        ranked = sorted(detection.classifications, key=lambda pair: pair[1], reverse=True)
        data["classifications"] = [[str(cls), round(float(conf), CONF_DECIMALS)]
                                   for cls, conf in ranked]
    data.update(detection.model_extra or {})
    return data


def _image_json(entry: ImageResult) -> dict[str, Any]:
    data: dict[str, Any] = {"file": entry.file.replace("\\", "/")}
    extra = dict(entry.model_extra or {})
    extra.pop("max_detection_conf", None)  # removed from the format in 1.3
    if entry.failure is not None:
        data["failure"] = entry.failure
        data["detections"] = None
    else:
        detections = sorted(entry.detections or [], key=lambda d: d.conf, reverse=True)
        data["detections"] = [_detection_json(d) for d in detections]
    for key in ("width", "height", "datetime"):
        if getattr(entry, key) is not None:
            data[key] = getattr(entry, key)
    data.update(extra)
    return data


def to_json(results: MDResults) -> dict[str, Any]:
    """The format-1.6 JSON document for ``results``."""
    info = dict(results.info)
    info["format_version"] = FORMAT_VERSION
    info.setdefault("detection_completion_time", now_timestamp())
    info.setdefault("detector", "unknown")
    document: dict[str, Any] = {
        "info": info,
        "detection_categories": dict(results.detection_categories),
    }
    if results.classification_categories is not None:
        document["classification_categories"] = dict(results.classification_categories)
    if results.classification_category_descriptions is not None:
        document["classification_category_descriptions"] = dict(
            results.classification_category_descriptions)
    document.update(results.model_extra or {})
    document["images"] = [_image_json(entry) for entry in results.images]
    return document


def write_md_results(results: MDResults, path: str | os.PathLike[str]) -> None:
    """Write ``results`` as format 1.6, atomically."""
    atomic_write_json(path, to_json(results))


def _path_parts(file: str) -> tuple[str, ...]:
    if "\\" in file or PureWindowsPath(file).drive:
        return PureWindowsPath(file).parts
    return PurePosixPath(file).parts


def locate_image(file: str, base_dir: str | os.PathLike[str]) -> Path | None:
    """Find the image an entry's ``file`` names.

    Relative paths are taken from ``base_dir`` (the JSON file's folder). An absolute path is used
    when it exists; otherwise, since results often travel between machines, the longest tail of
    the path that exists under ``base_dir`` is used (``/Users/x/test_images/2.jpg`` is found as
    ``<base_dir>/test_images/2.jpg``). Returns None when nothing matches.
    """
    base = Path(base_dir)
    parts = _path_parts(file)
    candidate = Path(file)
    if not candidate.is_absolute() and not PureWindowsPath(file).drive:
        local = base.joinpath(*parts)
        return local if local.is_file() else None
    if candidate.is_file():
        return candidate
    names = [part for part in parts[1:] if part not in ("/", "\\")]
    for start in range(len(names)):
        local = base.joinpath(*names[start:])
        if local.is_file():
            return local
    return None


def relative_file_name(image: Path, base_dir: Path) -> str:
    """The ``file`` value for ``image`` in a JSON stored in ``base_dir`` (forward slashes)."""
    # abspath, not resolve: an image that is a symlink keeps its own name and folder.
    return Path(os.path.abspath(image)).relative_to(os.path.abspath(base_dir)).as_posix()

