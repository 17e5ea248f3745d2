"""Camtrap DP 1.0 export: a classified MegaDetector file as a Camera Trap Data Package.

Camtrap DP (TDWG, <https://camtrap-dp.tdwg.org>) is what GBIF, Agouti, Wildlife Insights and
camtrapR read. :func:`export_camtrap_dp` writes, in ``OUTPUT_DIR``:

* ``deployments.csv``: one row per camera deployment. A deployment is the image's folder, or
  its ``location`` in the download manifest (``DEPLOYMENT_BY=manifest``). Coordinates (required
  by the standard) come from a deployments CSV (``DEPLOYMENTS``: ``deploymentID`` and
  ``latitude``, ``longitude``; any other Camtrap DP deployment column is copied). Start and end
  default to the first and last media time.
* ``media.csv``: one row per image: time from EXIF ``DateTimeOriginal``, else the manifest's
  ``datetime``, else (``TIME_FALLBACK=file``) the file's modification time; the UTC offset of
  camera clocks is ``UTC_OFFSET``. ``filePath`` is relative to the MD file's folder.
* ``observations.csv``: at media level, one row per detection at or above ``MIN_CONF``
  (``observationType`` animal/human/vehicle from MegaDetector's category; for animals the top
  class as ``scientificName`` — mapped through ``TAXA``, a CSV of ``class,scientificName``, when
  given — with ``classificationMethod`` machine, ``classifiedBy`` the classifier,
  ``classificationProbability`` its score; the box as ``bboxX``/``bboxY``/``bboxWidth``/
  ``bboxHeight``, top-left corner and size normalised to 0-1, MegaDetector's own convention);
  ``blank`` for an image without such detections and ``unclassified`` for an image MegaDetector
  could not read. At event level (events are sequences of frames of one deployment at most
  ``EVENT_GAP`` seconds apart), one row per event and class with the largest count seen in one
  frame, or ``blank``. The observations of a frame whose MD entry carries classify's
  ``tiger: true`` have ``observationTags`` ``tiger:flagged`` (see :data:`TIGER_TAG`).
  A detection carrying a ``human_verdict`` (``{label, reviewer, timestamp}``, written by
  ``tigertrap review camtrap-dp`` from the review store) becomes an ``animal`` observation of
  that label with ``classificationMethod`` human, ``classifiedBy`` the reviewer and
  ``classificationTimestamp`` the verdict's time; one judged ``not_an_animal`` is left out.
* ``datapackage.json``: the package, naming the canonical Camtrap DP 1.0 profile and schema
  URLs.

The package is written to a temporary folder, validated (:func:`validate_package`: frictionless
against the table schemas shipped in ``schemas/camtrap-dp-1.0``, and the shipped profile), and
only then moved into place; an invalid package raises :class:`CamtrapDPError` saying why.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import mimetypes
import os
import shutil
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import Field

from tigertrap.classify.sequences import PATH_COLUMNS, capture_time, group_by_time
from tigertrap.core.config import ConfigError, StageSettings
from tigertrap.core.md_results import MDResults, locate_image, read_md_results
from tigertrap.core.paths import atomic_write_text

__all__ = [
    "OBSERVATION_TYPES",
    "PROFILE_URL",
    "SCHEMA_DIR",
    "TABLES",
    "TIGER_TAG",
    "CamtrapDPError",
    "CamtrapDPExport",
    "CamtrapDPSettings",
    "export_camtrap_dp",
    "open_package",
    "validate_package",
]

VERSION = "1.0"
BASE_URL = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{VERSION}"
PROFILE_URL = f"{BASE_URL}/camtrap-dp-profile.json"
SCHEMA_DIR = Path(__file__).parent / "schemas" / f"camtrap-dp-{VERSION}"
TABLES = ("deployments", "media", "observations")
#: MegaDetector category name -> Camtrap DP observationType.
OBSERVATION_TYPES = {"animal": "animal", "person": "human", "human": "human",
                     "vehicle": "vehicle"}
#: observationTags value on the observations of a frame the tiger rule flagged.
TIGER_TAG = "tiger:flagged"
#: A detection's field holding a person's verdict (``tigertrap review camtrap-dp``).
HUMAN_VERDICT = "human_verdict"
#: The verdict that the box holds no animal: no observation is written for it.
NOT_AN_ANIMAL = "not_an_animal"
LOCATION_COLUMNS = ("location", "location_id", "locationid")
DATETIME_COLUMNS = ("datetime", "timestamp", "date_time")
REQUIRED_DEPLOYMENT_COLUMNS = ("deploymentID", "latitude", "longitude")
MD_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
PROBABILITY_DECIMALS = 4
BBOX_DECIMALS = 6
#: Camtrap DP requires bboxWidth/bboxHeight > 0.
MIN_BBOX_SIZE = 1e-6


class CamtrapDPError(ValueError):
    """Input that cannot become a valid Camtrap DP package; the message says what to fix."""


class CamtrapDPSettings(StageSettings):
    """The keys of ``tigertrap export camtrap-dp``."""

    md_file: Path | None = Field(default=None, description="classified MD file "
                                                           "(md_classified.json)")
    output_dir: Path | None = Field(default=None,
                                    description="default: <MD file folder>/camtrap-dp")
    deployments: Path | None = Field(
        default=None, description="CSV: deploymentID, latitude, longitude[, other Camtrap DP "
                                  "deployment columns]")
    manifest: Path | None = Field(default=None, description="download manifest.csv (path, "
                                                           "location, datetime)")
    deployment_by: Literal["folder", "manifest"] = Field(
        default="folder", description="a deployment is the image's folder or its manifest "
                                      "location")
    taxa: Path | None = Field(default=None, description="CSV: class, scientificName")
    min_conf: float = Field(default=0.2, ge=0.0, le=1.0,
                            description="detections at or above this conf are observations")
    event_gap: float = Field(default=60.0, gt=0,
                             description="max seconds between frames of one event")
    utc_offset: str = Field(default="+00:00", pattern=r"^[+-]\d{2}:\d{2}$",
                            description="camera clocks' offset from UTC")
    time_fallback: Literal["file", "error"] = Field(
        default="file", description="images without EXIF or manifest time: file time, or "
                                    "stop")
    title: str = Field(default="Camera-trap observations classified by tigertrap")
    project_title: str = Field(default="Camera-trap survey")
    contributor: str = Field(default="unknown", description="contact of the package")
    sampling_design: str = Field(default="opportunistic")
    capture_method: Literal["activityDetection", "timeLapse"] = "activityDetection"
    data_license: str = Field(default="CC0-1.0")
    media_license: str = Field(default="CC-BY-4.0")


@dataclass
class CamtrapDPExport:
    """What :func:`export_camtrap_dp` wrote."""

    package_dir: Path
    deployments: int = 0
    media: int = 0
    observations: int = 0
    events: int = 0
    time_fallbacks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


@dataclass
class _Media:
    entry: int
    media_id: str
    file_path: str
    deployment: str
    moment: datetime
    time_source: str
    event: str = ""
    tiger: bool = False
    observations: list[dict[str, Any]] = field(default_factory=list)


# -- inputs -----------------------------------------------------------------------------------

def _csv_rows(path: Path, key: str) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise ConfigError(key, f"{path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        return [c.strip() for c in reader.fieldnames or []], [
            {k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def _column(header: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {name.lower(): name for name in header}
    return next((lowered[n] for n in names if n in lowered), None)


def _read_manifest(path: Path) -> dict[Path, dict[str, str]]:
    """``{resolved image path: {"location": ..., "datetime": ...}}``."""
    header, rows = _csv_rows(path, "MANIFEST")
    path_column = _column(header, PATH_COLUMNS)
    if path_column is None:
        raise CamtrapDPError(f"{path}: needs a path column ({', '.join(PATH_COLUMNS)}); "
                             f"found {', '.join(header)}")
    location = _column(header, LOCATION_COLUMNS)
    moment = _column(header, DATETIME_COLUMNS)
    return {(path.parent / row[path_column]).resolve(): {
        "location": row.get(location, "") if location else "",
        "datetime": row.get(moment, "") if moment else ""} for row in rows if row[path_column]}


def _read_deployments(path: Path) -> dict[str, dict[str, str]]:
    header, rows = _csv_rows(path, "DEPLOYMENTS")
    missing = [c for c in REQUIRED_DEPLOYMENT_COLUMNS if c not in header]
    if missing:
        raise CamtrapDPError(f"{path}: missing the column(s) {', '.join(missing)}; a deployments "
                             f"CSV needs {', '.join(REQUIRED_DEPLOYMENT_COLUMNS)}")
    schema = _table_schema("deployments")
    known = {f["name"] for f in schema["fields"]}
    return {row["deploymentID"]: {k: v for k, v in row.items() if k in known and v}
            for row in rows if row.get("deploymentID")}


def _read_taxa(path: Path) -> dict[str, str]:
    header, rows = _csv_rows(path, "TAXA")
    name, scientific = _column(header, ("class", "class_name", "label")), \
        _column(header, ("scientificname", "scientific_name"))
    if name is None or scientific is None:
        raise CamtrapDPError(f"{path}: needs the columns class and scientificName; found "
                             f"{', '.join(header)}")
    return {row[name]: row[scientific] for row in rows if row[name] and row[scientific]}


def _parse_datetime(text: str) -> datetime | None:
    for candidate in (text, text.replace(" ", "T")):
        try:
            return datetime.fromisoformat(candidate)
        except ValueError:
            continue
    try:
        return datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None


def _tz(offset: str) -> timezone:
    sign = -1 if offset.startswith("-") else 1
    hours, minutes = (int(part) for part in offset[1:].split(":"))
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


# -- the tables -------------------------------------------------------------------------------

def _media_id(file_path: str) -> str:
    return hashlib.sha1(file_path.encode()).hexdigest()[:16]


def _file_path(entry_file: str, image: Path | None, base: Path) -> str:
    if image is not None:
        try:
            return image.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    posix = PurePosixPath(entry_file.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or str(posix).startswith(("~", ".")):
        raise CamtrapDPError(f"{entry_file}: Camtrap DP media paths are relative to the package "
                             "source; keep the images in or below the MD file's folder")
    return posix.as_posix()


def _moment(image: Path | None, manifest_row: dict[str, str], settings: CamtrapDPSettings,
            zone: timezone) -> tuple[datetime | None, str]:
    if image is not None:
        moment = capture_time(image)
        if moment is not None:
            return moment.replace(tzinfo=zone), "exif"
    parsed = _parse_datetime(manifest_row.get("datetime", "")) \
        if manifest_row.get("datetime") else None
    if parsed is not None:
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)), "manifest"
    if settings.time_fallback == "file" and image is not None and image.is_file():
        return datetime.fromtimestamp(image.stat().st_mtime, tz=zone).replace(microsecond=0), \
            "file"
    return None, ""


def _plan_media(results: MDResults, md_dir: Path, settings: CamtrapDPSettings,
                manifest: dict[Path, dict[str, str]]) -> list[_Media]:
    zone = _tz(settings.utc_offset)
    media, untimed = [], []
    for number, entry in enumerate(results.images):
        image = locate_image(entry.file, md_dir)
        row = manifest.get(image.resolve(), {}) if image is not None else {}
        file_path = _file_path(entry.file, image, md_dir)
        if settings.deployment_by == "manifest":
            deployment = row.get("location") or ""
            if not deployment:
                raise CamtrapDPError(f"{entry.file}: no location in the manifest "
                                     "(DEPLOYMENT_BY=manifest)")
        else:
            deployment = str(PurePosixPath(file_path).parent)
            deployment = "root" if deployment == "." else deployment
        moment, source = _moment(image, row, settings, zone)
        if moment is None:
            untimed.append(entry.file)
            continue
        media.append(_Media(number, _media_id(file_path), file_path, deployment, moment, source))
    if untimed:
        raise CamtrapDPError(
            f"{len(untimed)} image(s) have no capture time (no EXIF DateTimeOriginal, no manifest "
            f"datetime), e.g. {untimed[0]}; give a manifest with a datetime column or "
            "TIME_FALLBACK=file")
    return media


def _assign_events(media: list[_Media], gap_s: float) -> int:
    by_deployment = {Path(m.deployment) / m.media_id: m for m in media}
    # group_by_time groups by folder: the deployment plays the folder here.
    groups = group_by_time({key: m.moment.replace(tzinfo=None)
                            for key, m in by_deployment.items()}, gap_s)
    for key, m in by_deployment.items():
        m.event = _media_id(f"event:{groups[key]}")
    return len(set(groups.values()))


def _classification(detection: Any, results: MDResults, taxa: dict[str, str]
                    ) -> tuple[str, float] | None:
    top = detection.top_class
    if top is None or results.classification_categories is None:
        return None
    name = results.classification_categories.get(top[0], top[0])
    return taxa.get(name, name), float(top[1])


def _observation(m: _Media, level: str, observation_type: str, *, evented: dict[str, tuple],
                 **fields: Any) -> dict[str, Any]:
    start, end = evented[m.event]
    row = {"observationID": "", "deploymentID": m.deployment,
           "mediaID": m.media_id if level == "media" else "", "eventID": m.event,
           "eventStart": _iso(start if level == "event" else m.moment),
           "eventEnd": _iso(end if level == "event" else m.moment),
           "observationLevel": level, "observationType": observation_type}
    row.update(fields)
    return row


def _media_observations(m: _Media, results: MDResults, settings: CamtrapDPSettings,
                        taxa: dict[str, str], machine: dict[str, str],
                        evented: dict[str, tuple]) -> list[dict[str, Any]]:
    entry = results.images[m.entry]
    tags = TIGER_TAG if m.tiger else ""
    if entry.failed:
        return [_observation(m, "media", "unclassified", evented=evented,
                             observationComments=f"MegaDetector: {entry.failure}")]
    rows = []
    for detection in entry.detections or []:
        if detection.conf < settings.min_conf:
            continue
        kind = OBSERVATION_TYPES.get(results.detection_categories.get(detection.category, ""),
                                     "unknown")
        x, y, w, h = (max(0.0, min(1.0, float(v))) for v in detection.bbox)
        box = {"bboxX": round(x, BBOX_DECIMALS), "bboxY": round(y, BBOX_DECIMALS),
               "bboxWidth": round(max(w, MIN_BBOX_SIZE), BBOX_DECIMALS),
               "bboxHeight": round(max(h, MIN_BBOX_SIZE), BBOX_DECIMALS)}
        species = _classification(detection, results, taxa) if kind == "animal" else None
        extra: dict[str, Any] = {"count": 1, **box, "observationTags": tags}
        verdict = (detection.model_extra or {}).get(HUMAN_VERDICT)
        if isinstance(verdict, dict) and verdict.get("label") == NOT_AN_ANIMAL:
            continue
        if isinstance(verdict, dict) and verdict.get("label"):
            extra.update(scientificName=taxa.get(verdict["label"], verdict["label"]),
                         classificationMethod="human",
                         classifiedBy=str(verdict.get("reviewer") or "unknown"),
                         **({"classificationTimestamp": verdict["timestamp"]}
                            if verdict.get("timestamp") else {}))
            rows.append(_observation(m, "media", "animal", evented=evented, **extra))
            continue
        if species is not None:
            extra.update(scientificName=species[0],
                         classificationProbability=round(species[1], PROBABILITY_DECIMALS),
                         **machine)
        rows.append(_observation(m, "media", kind, evented=evented, **extra))
    return rows or [_observation(m, "media", "blank", evented=evented)]


def _event_observations(members: list[_Media], evented: dict[str, tuple]
                        ) -> list[dict[str, Any]]:
    """Per event: one row per (type, scientificName) with the largest count in one frame."""
    counts: dict[tuple[str, str], int] = defaultdict(int)
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for m in members:
        per_frame: dict[tuple[str, str], int] = defaultdict(int)
        for row in m.observations:
            if row["observationType"] in ("blank", "unclassified"):
                continue
            key = (row["observationType"], row.get("scientificName", ""))
            per_frame[key] += 1
            current = best.get(key)
            if current is None or row.get("classificationProbability", 0) > \
                    current.get("classificationProbability", 0):
                best[key] = row
        for key, count in per_frame.items():
            counts[key] = max(counts[key], count)
    first = members[0]
    if not counts:
        kind = "unclassified" if all(r["observationType"] == "unclassified"
                                     for m in members for r in m.observations) else "blank"
        return [_observation(first, "event", kind, evented=evented)]
    tiger = TIGER_TAG if any(m.tiger for m in members) else ""
    rows = []
    for key, count in sorted(counts.items()):
        source = best[key]
        kept = {k: source[k] for k in ("scientificName", "classificationProbability",
                                       "classificationMethod", "classifiedBy",
                                       "classificationTimestamp") if k in source}
        rows.append(_observation(first, "event", key[0], evented=evented, count=count,
                                 observationTags=tiger, **kept))
    return rows


def _tiger_flags(results: MDResults) -> set[str]:
    """Files whose MD entry carries classify's per-image ``tiger: true``."""
    return {entry.file for entry in results.images
            if (entry.model_extra or {}).get("tiger") is True}


# -- writing and validating -------------------------------------------------------------------

def _table_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}-table-schema.json").read_text(encoding="utf-8"))


def _table_text(name: str, rows: list[dict[str, Any]]) -> str:
    columns = [f["name"] for f in _table_schema(name)["fields"]]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n",
                            extrasaction="raise")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else value


def _descriptor(settings: CamtrapDPSettings, results: MDResults, media: list[_Media],
                deployments: list[dict[str, Any]], taxa_names: list[str]) -> dict[str, Any]:
    latitudes = [float(d["latitude"]) for d in deployments]
    longitudes = [float(d["longitude"]) for d in deployments]
    spatial = {"type": "Polygon", "coordinates": [[
        [min(longitudes), min(latitudes)], [max(longitudes), min(latitudes)],
        [max(longitudes), max(latitudes)], [min(longitudes), max(latitudes)],
        [min(longitudes), min(latitudes)]]]}
    moments = [m.moment for m in media]
    return {
        "resources": [{"name": name, "path": f"{name}.csv", "profile": "tabular-data-resource",
                       "format": "csv", "mediatype": "text/csv", "encoding": "utf-8",
                       "schema": f"{BASE_URL}/{name}-table-schema.json"} for name in TABLES],
        "profile": PROFILE_URL,
        "name": "tigertrap-camtrap-dp",
        "id": hashlib.sha1("".join(m.media_id for m in media).encode()).hexdigest(),
        "created": _iso(datetime.now(timezone.utc).replace(microsecond=0)),
        "title": settings.title,
        "contributors": [{"title": settings.contributor, "role": "contact"}],
        "sources": [{"title": "tigertrap", "version": "0.1.0"},
                    {"title": str(results.info.get("detector", "MegaDetector"))},
                    {"title": str(results.info.get("classifier", "unclassified"))}],
        "licenses": [{"name": settings.data_license, "scope": "data"},
                     {"name": settings.media_license, "scope": "media"}],
        "project": {"title": settings.project_title, "samplingDesign": settings.sampling_design,
                    "captureMethod": [settings.capture_method], "individualAnimals": False,
                    "observationLevel": ["media", "event"]},
        "spatial": spatial,
        "temporal": {"start": min(moments).date().isoformat(),
                     "end": max(moments).date().isoformat()},
        "taxonomic": [{"scientificName": name} for name in taxa_names],
    }


def open_package(package_dir: Path) -> Any:
    """The package in ``package_dir`` as a ``frictionless.Package``, its canonical Camtrap DP
    1.0 schema URLs replaced by the shipped table schemas (nothing is fetched).

    Raises:
        CamtrapDPError: a Camtrap DP table names a schema other than 1.0's.
    """
    from frictionless import Package

    descriptor = json.loads((package_dir / "datapackage.json").read_text(encoding="utf-8"))
    descriptor.pop("profile", None)  # checked by validate_package against the shipped one
    for resource in descriptor.get("resources", []):
        if resource.get("name") in TABLES:
            if resource.get("schema") != f"{BASE_URL}/{resource['name']}-table-schema.json":
                raise CamtrapDPError(f"resource {resource['name']}: schema is not Camtrap DP "
                                     f"{VERSION}'s")
            resource["schema"] = _table_schema(resource["name"])
    return Package(descriptor, basepath=str(package_dir))


def validate_package(package_dir: Path) -> list[str]:
    """Problems of the package in ``package_dir`` (empty when valid): ``datapackage.json``
    against the shipped Camtrap DP 1.0 profile, and every table (types, constraints, keys,
    foreign keys) with frictionless against the shipped table schemas."""
    import jsonschema

    descriptor = json.loads((package_dir / "datapackage.json").read_text(encoding="utf-8"))
    profile = json.loads((SCHEMA_DIR / "camtrap-dp-profile.json").read_text(encoding="utf-8"))
    checker = jsonschema.Draft7Validator(profile, format_checker=jsonschema.FormatChecker())
    problems = [f"datapackage.json {'/'.join(map(str, e.path))}: {e.message}"
                for e in checker.iter_errors(descriptor)]
    try:
        report = open_package(package_dir).validate()
    except CamtrapDPError as error:
        return [*problems, str(error)]
    for task in report.tasks:
        problems += [f"{task.name}: {error.message}" for error in task.errors]
    problems += [f"package: {error.message}" for error in report.errors]
    return problems


def _require(settings: CamtrapDPSettings) -> Path:
    if settings.md_file is None:
        raise ConfigError("MD_FILE", "is required: the classified MD file to export")
    if not settings.md_file.is_file():
        raise ConfigError("MD_FILE", f"{settings.md_file} does not exist")
    if settings.deployment_by == "manifest" and settings.manifest is None:
        raise ConfigError("MANIFEST", "is required when DEPLOYMENT_BY=manifest")
    return settings.md_file


def export_camtrap_dp(settings: CamtrapDPSettings) -> CamtrapDPExport:
    """Write the Camtrap DP package of ``settings.md_file`` (see the module docstring).

    Raises:
        ConfigError: a key is missing or names nothing.
        MDResultsError: the MD file is not MegaDetector output.
        CamtrapDPError: the inputs cannot make a valid package (no images, no coordinates for a
            deployment, a deployments CSV without its columns, images without a time and
            ``TIME_FALLBACK=error``), or the package does not validate; nothing is written.
    """
    md_file = _require(settings)
    results = read_md_results(md_file)
    if not results.images:
        raise CamtrapDPError(f"{md_file}: holds no images; nothing to export")
    md_dir = md_file.parent
    manifest = _read_manifest(settings.manifest) if settings.manifest else {}
    known = _read_deployments(settings.deployments) if settings.deployments else {}
    taxa = _read_taxa(settings.taxa) if settings.taxa else {}
    media = _plan_media(results, md_dir, settings, manifest)
    missing = sorted({m.deployment for m in media} - set(known))
    if missing:
        raise CamtrapDPError(
            f"no latitude/longitude for deployment(s) {', '.join(missing[:5])}: Camtrap DP "
            "requires them; give DEPLOYMENTS, a CSV with deploymentID, latitude, longitude "
            "(deploymentID = the image folder, or the manifest location with "
            "DEPLOYMENT_BY=manifest)")
    events = _assign_events(media, settings.event_gap)
    flagged = _tiger_flags(results)
    for m in media:
        m.tiger = results.images[m.entry].file in flagged
    by_event: dict[str, list[_Media]] = defaultdict(list)
    for m in sorted(media, key=lambda item: item.moment):
        by_event[m.event].append(m)
    evented = {event: (members[0].moment, members[-1].moment)
               for event, members in by_event.items()}
    classified = results.info.get("classification_completion_time")
    machine = {"classificationMethod": "machine",
               "classifiedBy": str(results.info.get("classifier") or "tigertrap")}
    if classified:
        stamp = datetime.strptime(classified, MD_TIME_FORMAT).replace(tzinfo=timezone.utc)
        machine["classificationTimestamp"] = _iso(stamp)
    observations = []
    for m in media:
        m.observations = _media_observations(m, results, settings, taxa, machine, evented)
        observations += m.observations
    for members in by_event.values():
        observations += _event_observations(members, evented)
    for number, row in enumerate(observations, start=1):
        row["observationID"] = f"obs{number:07d}"
    deployments = []
    for name in sorted({m.deployment for m in media}):
        members = [m for m in media if m.deployment == name]
        row = {"deploymentID": name, "locationName": name,
               "deploymentStart": _iso(min(m.moment for m in members)),
               "deploymentEnd": _iso(max(m.moment for m in members))}
        row.update(known[name])
        deployments.append(row)
    media_rows = [{"mediaID": m.media_id, "deploymentID": m.deployment,
                   "captureMethod": settings.capture_method, "timestamp": _iso(m.moment),
                   "filePath": m.file_path, "filePublic": False,
                   "fileName": PurePosixPath(m.file_path).name,
                   "fileMediatype": mimetypes.guess_type(m.file_path)[0] or "image/jpeg",
                   "mediaComments": "" if m.time_source == "exif"
                   else f"time from {m.time_source}"} for m in media]
    names = sorted({r["scientificName"] for r in observations if r.get("scientificName")})
    out_dir = settings.output_dir or md_dir / "camtrap-dp"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".camtrap-dp-", dir=out_dir.parent))
    try:
        for name, rows in (("deployments", deployments), ("media", media_rows),
                           ("observations", observations)):
            atomic_write_text(scratch / f"{name}.csv", _table_text(name, rows))
        atomic_write_text(scratch / "datapackage.json", json.dumps(
            _descriptor(settings, results, media, deployments, names), indent=2) + "\n")
        problems = validate_package(scratch)
        if problems:
            raise CamtrapDPError("the package does not validate against Camtrap DP 1.0: "
                                 + "; ".join(problems[:10]))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(scratch, out_dir)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    return CamtrapDPExport(out_dir, len(deployments), len(media_rows), len(observations),
                           events, sum(m.time_source == "file" for m in media))

