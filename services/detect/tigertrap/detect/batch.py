"""The detect stage: MegaDetector over a folder, list or manifest, into ``md.json``.

:func:`run_detect` is the stage; the CLI command and the Celery task call it. It is idempotent
and resumable:

* results already in the output file (same detector) are reused, so images added to a folder
  later are the only ones detected on the next run (``OVERWRITE`` redoes everything; failed
  images are always retried);
* results are checkpointed every ``CHECKPOINT_FREQ`` images (:mod:`tigertrap.detect.checkpoint`)
  and a re-run after a crash, ``kill -9`` or a cancelled job continues from there;
* the output is written once, atomically, in MegaDetector's format 1.6, listing exactly the
  images of the input, each once, with paths relative to the output file's folder.

Images are opened and letterboxed by a pool of threads (``NCORES``) while the model runs; on a
GPU the model takes ``BATCH_SIZE`` images per pass.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.md_results import (
    FORMAT_VERSION,
    ImageResult,
    MDResults,
    MDResultsError,
    now_timestamp,
    read_md_results,
    write_md_results,
)
from tigertrap.core.paths import PathOutsideDataRoot, within
from tigertrap.core.queue import ProgressFn
from tigertrap.detect.checkpoint import Checkpoint, OutputLocked, default_checkpoint_path
from tigertrap.detect.config import DetectSettings
from tigertrap.detect.detector import FAILURE_IMAGE_OPEN, MegaDetector, PreparedImage
from tigertrap.detect.sources import ImageSourceError, find_images, relative_name
from tigertrap.detect.weights import (
    DetectorWeights,
    UnknownModelError,
    WeightsChecksumError,
    WeightsNotFound,
    resolve_weights,
    same_detector,
)

__all__ = ["USER_ERRORS", "DetectSummary", "ExistingResultsConflict", "output_path",
           "run_detect"]

log = logging.getLogger(__name__)

#: Images being opened ahead of the model, per loading thread.
PREFETCH_PER_THREAD = 2

T = TypeVar("T")
R = TypeVar("R")


class ExistingResultsConflict(ValueError):
    """The output file holds results of another detector."""


#: Errors that mean "fix the input or the settings", not a bug: adapters show the message.
USER_ERRORS: tuple[type[Exception], ...] = (
    ImageSourceError, WeightsNotFound, WeightsChecksumError, UnknownModelError,
    ExistingResultsConflict, OutputLocked, PathOutsideDataRoot)


class DetectSummary(BaseModel):
    """What a run did; ``md_file`` is the output written (or already complete)."""

    md_file: Path
    detector: str
    images: int
    detected: int
    reused: int
    failures: int
    not_downloaded: int
    seconds: float


def _source(settings: DetectSettings) -> Path:
    if settings.image_list is not None and settings.input_dir is not None:
        raise ImageSourceError("give either INPUT_DIR (a folder) or IMAGE_LIST (a list or "
                               "manifest file), not both")
    source = settings.image_list or settings.input_dir
    if source is None:
        raise ImageSourceError("nothing to detect on: set INPUT_DIR (a folder) or IMAGE_LIST "
                               "(a .txt/.json list or a manifest .csv)")
    return Path(source)


def output_path(settings: DetectSettings) -> Path:
    """The output file: ``MD_FILE`` in the input folder (or beside the list file)."""
    source = _source(settings)
    folder = source if source.is_dir() else source.parent
    return Path(os.path.abspath(folder / settings.md_file))


def _models_dir(settings: DetectSettings) -> Path:
    if settings.models_dir.is_absolute():
        return settings.models_dir
    return load_settings(CoreSettings).tigertrap_data / settings.models_dir


def _reusable(md_file: Path, weights: DetectorWeights, overwrite: bool) -> dict[str, ImageResult]:
    if overwrite or not md_file.is_file():
        return {}
    try:
        existing = read_md_results(md_file)
    except MDResultsError as error:
        raise ExistingResultsConflict(f"{error}; move it away or set OVERWRITE=true") from None
    detector = str(existing.info.get("detector"))
    if not same_detector(detector, weights.file_name):
        raise ExistingResultsConflict(
            f"{md_file} holds results of detector {detector!r}, not {weights.file_name!r}; "
            f"set OVERWRITE=true to replace them, or choose another MD_FILE")
    return {entry.file: entry for entry in existing.images if not entry.failed}


def _prefetch(pool: ThreadPoolExecutor, func: Callable[..., R], items: Iterable[tuple[T, ...]],
              window: int) -> Iterator[R]:
    """``func(*item)`` for each item, in order, with up to ``window`` running ahead."""
    pending: deque[Future[R]] = deque()
    for item in items:
        pending.append(pool.submit(func, *item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _batches(items: Iterator[T], size: int) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _detect_batch(detector: MegaDetector, batch: list[PreparedImage | ImageResult],
                  threshold: float) -> list[ImageResult]:
    ready = [item for item in batch if isinstance(item, PreparedImage)]
    failed = [item for item in batch if isinstance(item, ImageResult)]
    return failed + (detector.detect(ready, threshold) if ready else [])


def _detect(detector: MegaDetector, todo: list[tuple[Path, str]], settings: DetectSettings,
            checkpoint: Checkpoint, report: Callable[[int], None]) -> None:
    threads = settings.ncores or os.cpu_count() or 1
    unsaved: list[ImageResult] = []
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="detect-load")
    try:
        prepared = _prefetch(pool, detector.prepare, todo,
                             threads * PREFETCH_PER_THREAD + detector.batch_size)
        for batch in _batches(prepared, detector.batch_size):
            unsaved.extend(_detect_batch(detector, batch, settings.threshold))
            if len(unsaved) >= settings.checkpoint_freq:
                checkpoint.append(unsaved)
                unsaved = []
                log.info("checkpoint: %d images saved in %s", len(checkpoint.entries),
                         checkpoint.path.name)
            report(len(batch))
    finally:
        checkpoint.append(unsaved)  # a cancelled job keeps what it finished
        pool.shutdown(wait=True, cancel_futures=True)


def _info(weights: DetectorWeights) -> dict[str, object]:
    return {
        "detector": weights.file_name,
        "detector_metadata": weights.metadata,
        "detection_completion_time": now_timestamp(),
        "format_version": FORMAT_VERSION,
    }


def _refused(images: list[Path], names: list[str], image_root: Path | None,
             ) -> dict[str, ImageResult]:
    """Failure entries for images that lie (through a symlink or a list entry) outside
    ``image_root``; they are never opened."""
    if image_root is None:
        return {}
    return {name: ImageResult(file=name, failure=f"{FAILURE_IMAGE_OPEN}: image outside the "
                                                 "data root (not read)")
            for image, name in zip(images, names, strict=True) if not within(image, image_root)}


def run_detect(settings: DetectSettings, *, progress: ProgressFn | None = None,
               image_root: Path | None = None) -> DetectSummary:
    """Detect animals, people and vehicles on the input images and write ``MD_FILE``.

    Args:
        settings: what to detect on and how (paths absolute or relative to the working folder;
            a relative ``MODELS_DIR`` is taken from the data root).
        progress: called as ``progress(done, total)`` after each batch; may raise to stop
            (a cancelled job): finished images are checkpointed first.
        image_root: a job's data root: images outside it (a symlink in the folder pointing
            out, a list entry elsewhere) are failure entries, never opened.

    Returns:
        The summary of the run.

    Raises:
        ImageSourceError: no usable input folder or list.
        tigertrap.detect.weights.WeightsNotFound: no weights (the message says where to put
            them); ``WeightsChecksumError``, ``UnknownModelError`` likewise.
        ExistingResultsConflict: ``MD_FILE`` holds another detector's results.
        tigertrap.detect.checkpoint.OutputLocked: another run is writing the same output.
    """
    started = time.monotonic()
    md_file = output_path(settings)
    image_set = find_images(_source(settings), recursive=settings.recursive,
                            exclude_dirs=settings.exclude_dirs, path_column=settings.path_column)
    if image_set.not_downloaded:
        log.warning("%d manifest rows were never downloaded and are left out",
                    image_set.not_downloaded)
    names = [relative_name(image, md_file.parent) for image in image_set.images]
    weights = resolve_weights(settings.md_model, models_dir=_models_dir(settings),
                              download=settings.download_weights)
    reused = _reusable(md_file, weights, settings.overwrite)
    checkpoint_file = (md_file.parent / settings.checkpoint_file if settings.checkpoint_file
                       else default_checkpoint_path(md_file))
    header = {"detector": weights.file_name, "threshold": settings.threshold,
              "image_size": settings.image_size}
    with Checkpoint(checkpoint_file, header) as checkpoint:
        if checkpoint.discarded:
            log.warning(checkpoint.discarded)
        done = {**reused, **checkpoint.entries, **_refused(image_set.images, names, image_root)}
        todo = [(image, name) for image, name in zip(image_set.images, names, strict=True)
                if name not in done]
        total, finished = len(names), len(names) - len(todo)
        if progress is not None:
            progress(finished, total)
        if todo:
            detector = MegaDetector(weights, device=settings.device,
                                    image_size=settings.image_size,
                                    batch_size=settings.batch_size,
                                    keep_model=settings.keep_model)

            def report(count: int) -> None:
                nonlocal finished
                finished += count
                if progress is not None:
                    progress(finished, total)

            _detect(detector, todo, settings, checkpoint, report)
        results = done | checkpoint.entries
        images = [results[name] for name in names]
        write_md_results(MDResults(info=_info(weights), images=images), md_file)
        checkpoint.remove()
    return DetectSummary(
        md_file=md_file, detector=weights.file_name, images=len(images),
        detected=len(todo), reused=len(names) - len(todo),
        failures=sum(entry.failed for entry in images),
        not_downloaded=image_set.not_downloaded,
        seconds=round(time.monotonic() - started, 3))
