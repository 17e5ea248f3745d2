"""Batch mode: classify every animal detection of a MegaDetector file, write results that open
in Timelapse and AddaxAI.

:func:`classify_md` reads ``MD_FILE`` (any format version), crops each animal detection with
``conf >= LOWER_CONF`` exactly as the bundle's manifest says (crop method, snip size, then the
input size), classifies the crops in batches while a pool of threads decodes the next images,
and writes (atomically) to the output folder; the tables are built in :mod:`.tables`:

* the MD file, format 1.6, with ``classification_categories`` (the class-map index as a string
  -> class name) and per-detection ``classifications`` (top-k, sorted by score);
* ``predictions.csv``: one row per classified detection; ``detection_index`` is the detection's
  position in the written MD file (detections are sorted by confidence there);
* ``images.csv``: one row per image: top species, animal count, maximum confidences, tiger flag;
* optionally mewc-predict's long table (one row per detection and class).

An image that cannot be found or decoded becomes a ``failure`` entry (``detections: null``, as
MegaDetector writes it) and the batch goes on. A re-run with the same inputs and settings finds
its outputs complete and returns without work.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from tigertrap.classify.config import ClassifySettings
from tigertrap.classify.engine import InferenceEngine
from tigertrap.classify.model_input import crop_inputs
from tigertrap.classify.sequences import (
    capture_time,
    group_by_time,
    read_sequence_file,
    smooth_scores,
    smoothing_options,
)
from tigertrap.classify.tables import (
    IMAGE_COLUMNS,
    LONG_COLUMNS,
    PREDICTION_COLUMNS,
    Key,
    Outcome,
    animal_ids,
    csv_text,
    image_rows,
    long_rows,
    prediction_rows,
    tiger_flags,
    tiger_rule,
)
from tigertrap.core.bundle import BundleManifest, file_sha256
from tigertrap.core.config import ConfigError
from tigertrap.core.crops import draft_size
from tigertrap.core.detections import qualifying
from tigertrap.core.images import ImageLoadError, image_size, open_image
from tigertrap.core.md_results import (
    MDResults,
    locate_image,
    now_timestamp,
    read_md_results,
    write_md_results,
)
from tigertrap.core.paths import atomic_write_text, within
from tigertrap.core.queue import ProgressFn

__all__ = ["ClassifyResult", "classify_md"]

log = logging.getLogger(__name__)

#: MegaDetector's wording for an image it could not open, followed by the reason.
FAILURE_IMAGE_ACCESS = "Failure image access"
#: Decoded images waiting for the model, per decoding thread.
PREFETCH_PER_WORKER = 4

T = TypeVar("T")


@dataclass
class ClassifyResult:
    """What :func:`classify_md` wrote and did."""

    md_file: Path
    predictions_csv: Path
    images_csv: Path
    long_csv: Path | None
    images: int = 0
    classified: int = 0
    failures: int = 0
    skipped: bool = False
    #: What the tiger alert did (``TIGER_WEBHOOK``); None when no webhook is set.
    tiger_alert: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {key: str(value) if isinstance(value, Path) else value
                for key, value in asdict(self).items()}


@dataclass
class _ImageWork:
    entry: int
    path: Path | None
    detections: list[int]
    bboxes: list[tuple[float, float, float, float]]
    size: tuple[int, int] | None
    #: Why ``path`` is None.
    missing: str = "image file not found"


@dataclass
class _Decoded:
    work: _ImageWork
    inputs: np.ndarray | None = None
    kept: list[int] = field(default_factory=list)
    failure: str | None = None
    time: datetime | None = None


# -- planning ---------------------------------------------------------------------------------

def _require(settings: ClassifySettings) -> tuple[Path, Path]:
    if settings.md_file is None:
        raise ConfigError("MD_FILE", "is required: the MegaDetector file to classify")
    if settings.model is None:
        raise ConfigError("MODEL", "is required: the classifier bundle folder")
    if not settings.md_file.is_file():
        raise ConfigError("MD_FILE", f"{settings.md_file} does not exist")
    if not settings.model.is_dir():
        raise ConfigError("MODEL", f"{settings.model} is not a folder")
    if settings.sequence_source == "manifest" and settings.sequence_file is None:
        raise ConfigError("SEQUENCE_FILE", "is required when SEQUENCE_SOURCE=manifest")
    return settings.md_file, settings.model


def _sort_detections(results: MDResults) -> None:
    """Order detections as :func:`write_md_results` writes them (stable, conf descending), so
    that indices taken here are indices in the written file."""
    for entry in results.images:
        if entry.detections:
            entry.detections = sorted(entry.detections, key=lambda d: d.conf, reverse=True)
            for detection in entry.detections:
                detection.classifications = None


def _plan(results: MDResults, base: Path, lower_conf: float,
          image_root: Path | None = None) -> tuple[list[_ImageWork], dict[int, Path]]:
    animals = animal_ids(results)
    work, located = [], {}
    for number, entry in enumerate(results.images):
        path = locate_image(entry.file, base)
        missing = "image file not found"
        if path is not None and image_root is not None and not within(path, image_root):
            path, missing = None, "image outside the data root (not read)"
        if path is not None:
            located[number] = path
        if entry.failed or not entry.detections:
            continue
        chosen = qualifying(entry.detections, animals, lower_conf)
        if chosen:
            size = (entry.width, entry.height) if entry.width and entry.height else None
            work.append(_ImageWork(number, path, chosen,
                                   [entry.detections[i].bbox for i in chosen], size, missing))
    return work, located


# -- decoding ---------------------------------------------------------------------------------

def _decode(work: _ImageWork, manifest: BundleManifest, want_time: bool) -> _Decoded:
    if work.path is None:
        return _Decoded(work, failure=f"{FAILURE_IMAGE_ACCESS}: {work.missing}")
    try:
        width, height = work.size or image_size(work.path)
        draft = draft_size(work.bboxes, width, height, manifest.snip_size)
        with open_image(work.path, draft_size=draft) as image:
            inputs, kept = crop_inputs(image, work.bboxes, manifest)
    except ImageLoadError as error:
        return _Decoded(work, failure=f"{FAILURE_IMAGE_ACCESS}: {error.reason}")
    moment = capture_time(work.path) if want_time else None
    return _Decoded(work, inputs, [work.detections[k] for k in kept], time=moment)


def _ordered_map(func: Callable[[Any], T], items: Iterable[Any], workers: int) -> Iterator[T]:
    """``map(func, items)`` on a thread pool, in order, with a bounded number in flight."""
    window = workers * PREFETCH_PER_WORKER
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(func, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# -- classification ---------------------------------------------------------------------------

class _Batcher:
    """Collects crops from many images and runs them through the engine in full batches."""

    def __init__(self, engine: InferenceEngine, batch_size: int) -> None:
        self.engine, self.batch_size = engine, batch_size
        self.keys: list[Key] = []
        self.inputs: list[np.ndarray] = []
        self.scores: dict[Key, np.ndarray] = {}

    def add(self, entry: int, detections: list[int], inputs: np.ndarray) -> None:
        self.keys += [(entry, d) for d in detections]
        self.inputs += list(inputs)
        while len(self.inputs) >= self.batch_size:
            self._run(self.batch_size)

    def finish(self) -> dict[Key, np.ndarray]:
        if self.inputs:
            self._run(len(self.inputs))
        return self.scores

    def _run(self, count: int) -> None:
        probabilities = self.engine.predict(np.stack(self.inputs[:count]))
        self.scores.update(zip(self.keys[:count], probabilities, strict=True))
        del self.keys[:count], self.inputs[:count]


def _classify(work: list[_ImageWork], engine: InferenceEngine, settings: ClassifySettings,
              progress: ProgressFn | None) -> tuple[dict[Key, np.ndarray], dict[int, str],
                                                    dict[Path, datetime | None]]:
    batcher = _Batcher(engine, settings.batch_size)
    failures: dict[int, str] = {}
    times: dict[Path, datetime | None] = {}
    want_time = settings.sequence_source == "exif"
    decoded_images = _ordered_map(lambda item: _decode(item, engine.manifest, want_time),
                                  work, settings.decode_workers)
    for done, decoded in enumerate(decoded_images, start=1):
        if decoded.failure is not None:
            failures[decoded.work.entry] = decoded.failure
        elif decoded.kept:
            batcher.add(decoded.work.entry, decoded.kept, decoded.inputs)
            if decoded.work.path is not None:
                times[decoded.work.path] = decoded.time
        if progress is not None:
            progress(done, len(work))
    return batcher.finish(), failures, times


def _sequences(settings: ClassifySettings, scores: dict[Key, np.ndarray],
               located: dict[int, Path], times: dict[Path, datetime | None]
               ) -> dict[Key, str | None]:
    if settings.sequence_source == "none":
        return {}
    if settings.sequence_source == "manifest":
        assert settings.sequence_file is not None
        by_path = read_sequence_file(settings.sequence_file)
    else:
        by_path = group_by_time(times, settings.sequence_gap)
    resolved = {entry: path.resolve() for entry, path in located.items()}
    return {key: by_path.get(resolved[key[0]]) if key[0] in resolved else None
            for key in scores}


def _smooth(raw: dict[Key, np.ndarray], sequence_of: dict[Key, str | None],
            results: MDResults, engine: InferenceEngine, settings: ClassifySettings
            ) -> dict[Key, np.ndarray]:
    """MegaDetector's smoothing within images (IMAGE_SMOOTHING) and sequences; the tiger flag
    of a detection is never smoothed away."""
    if not settings.image_smoothing and not any(s is not None for s in sequence_of.values()):
        return raw
    options = smoothing_options(
        min_dominant=settings.smooth_min_dominant,
        max_nondominant=settings.smooth_max_nondominant,
        min_dominant_over_other=settings.smooth_min_dominant_over_other,
        other_classes=(name.strip() for name in settings.smooth_other_classes.split(",")),
        classification_threshold=settings.smooth_classification_threshold,
        detection_threshold=settings.smooth_detection_threshold)
    confs = {key: float(results.images[key[0]].detections[key[1]].conf)  # type: ignore[index]
             for key in raw}
    flag = tiger_rule(engine, settings)
    return smooth_scores(raw, confs, sequence_of, engine.class_map.names, options,
                         image_level=settings.image_smoothing,
                         keep=lambda scores: flag([scores])[1])


# -- outputs ----------------------------------------------------------------------------------

def _top_k(probabilities: np.ndarray, k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(str(int(i)), float(probabilities[i])) for i in order]


def _output_file(entry_file: str, path: Path | None, out_dir: Path) -> str:
    if path is None:
        return entry_file
    try:
        return path.resolve().relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _update_results(results: MDResults, outcome: Outcome, located: dict[int, Path],
                    out_dir: Path, engine: InferenceEngine, settings: ClassifySettings,
                    fingerprint: str) -> None:
    for number, entry in enumerate(results.images):
        entry.file = _output_file(entry.file, located.get(number), out_dir)
        if number in outcome.failures:
            entry.failure, entry.detections = outcome.failures[number], None
    for (number, index), probabilities in outcome.final.items():
        detections = results.images[number].detections
        assert detections is not None
        detections[index].classifications = _top_k(probabilities, settings.top_k)
    results.classification_categories = {str(i): name
                                         for i, name in engine.class_map.as_dict().items()}
    manifest = engine.manifest
    results.info.update({
        "classifier": f"{manifest.name} {manifest.version}".strip(),
        "classification_completion_time": now_timestamp(),
        "classifier_metadata": {
            "backbone": manifest.backbone, "input_size": manifest.input_size,
            "crop_method": manifest.crop_method, "snip_size": manifest.snip_size,
            "detection_threshold": settings.lower_conf, "top_k": settings.top_k,
            "sequence_source": settings.sequence_source, "fingerprint": fingerprint,
        },
    })


def _mark_tigers(results: MDResults, outcome: Outcome, engine: InferenceEngine,
                 settings: ClassifySettings) -> None:
    """Per image entry, ``tiger`` (the flag; a field Timelapse and scripts can filter on, which
    MegaDetector's validator accepts) and ``tiger_score`` where a detection was classified."""
    if settings.tiger_class not in engine.class_map.names:
        return
    flags = tiger_flags(outcome, engine, settings)
    for number, entry in enumerate(results.images):
        if entry.failed:
            continue
        score, flagged = flags.get(number, (None, False))
        entry.tiger = flagged  # type: ignore[attr-defined]  # an MD extra field
        if score is not None:
            entry.tiger_score = round(score, 4)  # type: ignore[attr-defined]


def _tiger_alert(md_file: Path, settings: ClassifySettings) -> str | None:
    if settings.tiger_webhook is None:
        return None
    from tigertrap.classify.tiger_alert import send_tiger_alert

    return send_tiger_alert(md_file, settings.tiger_webhook,
                            retries=settings.tiger_webhook_retries,
                            backoff_s=settings.tiger_webhook_backoff,
                            timeout_s=settings.tiger_webhook_timeout).status


# -- the stage --------------------------------------------------------------------------------

def _paths(settings: ClassifySettings, md_file: Path) -> ClassifyResult:
    out_dir = settings.output_dir or md_file.parent
    return ClassifyResult(md_file=out_dir / settings.output_md,
                          predictions_csv=out_dir / settings.pred_csv,
                          images_csv=out_dir / settings.images_csv,
                          long_csv=out_dir / settings.long_csv if settings.long_table else None)


def _fingerprint(md_file: Path, manifest: BundleManifest, settings: ClassifySettings) -> str:
    relevant = settings.model_dump(mode="json", exclude={
        "output_dir", "md_file", "model", "backend", "batch_size", "max_wait_ms", "max_queue",
        "threads", "decode_workers", "tiger_webhook", "tiger_webhook_retries",
        "tiger_webhook_backoff", "tiger_webhook_timeout"})
    if settings.sequence_file is not None and settings.sequence_file.is_file():
        relevant["sequence_file_sha256"] = file_sha256(settings.sequence_file)
    payload = json.dumps([file_sha256(md_file), manifest.files, relevant], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _already_done(result: ClassifyResult, fingerprint: str) -> bool:
    outputs = [result.md_file, result.predictions_csv, result.images_csv, result.long_csv]
    if not all(path.is_file() for path in outputs if path is not None):
        return False
    try:
        info = json.loads(result.md_file.read_text(encoding="utf-8")).get("info", {})
    except (OSError, json.JSONDecodeError):
        return False
    return info.get("classifier_metadata", {}).get("fingerprint") == fingerprint


def classify_md(settings: ClassifySettings, *, progress: ProgressFn | None = None,
                engine: InferenceEngine | None = None,
                image_root: Path | None = None) -> ClassifyResult:
    """Classify the animal detections of ``settings.md_file`` with the bundle
    ``settings.model`` and write the outputs (see the module docstring).

    ``engine`` may be an already loaded engine on the same bundle (the HTTP server's).
    ``progress(done, total)`` is called after each image with detections to classify.
    With ``image_root`` (a job's data root), an image the MD file names outside it is a
    failure, never read.

    Raises:
        ConfigError: a required key is missing or names nothing.
        MDResultsError: the MD file is not MegaDetector output.
        BundleError: the bundle is incomplete or altered.
    """
    md_file, bundle_dir = _require(settings)
    result = _paths(settings, md_file)
    engine = engine or InferenceEngine(bundle_dir, backend=settings.backend,
                                       max_batch_size=settings.batch_size,
                                       threads=settings.threads,
                                       precision=settings.precision)
    fingerprint = _fingerprint(md_file, engine.manifest, settings)
    results = read_md_results(md_file)
    result.images = len(results.images)
    if _already_done(result, fingerprint):
        log.info("%s is complete for these inputs; nothing to do", result.md_file)
        result.skipped = True
        result.tiger_alert = _tiger_alert(result.md_file, settings)  # sent before a restart?
        return result
    _sort_detections(results)
    work, located = _plan(results, md_file.parent, settings.lower_conf, image_root)
    engine.load()
    raw, failures, times = _classify(work, engine, settings, progress)
    sequence_of = _sequences(settings, raw, located, times)
    outcome = Outcome(raw, _smooth(raw, sequence_of, results, engine, settings), sequence_of,
                      failures)
    out_dir = result.md_file.parent
    _update_results(results, outcome, located, out_dir, engine, settings, fingerprint)
    _mark_tigers(results, outcome, engine, settings)
    # Tables first, the MD file last: its fingerprint marks the whole set complete.
    atomic_write_text(result.predictions_csv,
                      csv_text(PREDICTION_COLUMNS, prediction_rows(results, outcome, engine)))
    atomic_write_text(result.images_csv, csv_text(
        IMAGE_COLUMNS, image_rows(results, outcome, engine, settings)))
    if result.long_csv is not None:
        atomic_write_text(result.long_csv,
                          csv_text(LONG_COLUMNS, long_rows(results, outcome, engine)))
    write_md_results(results, result.md_file)
    result.classified, result.failures = len(raw), len(failures)
    result.tiger_alert = _tiger_alert(result.md_file, settings)
    log.info("classified %d detections in %d images (%d failures) -> %s", len(raw),
             len(work), len(failures), result.md_file)
    return result
