"""MegaDetector for full frames: on the detect worker through the job queue, or in-process.

``queue`` (the default) keeps PyTorch and the detector out of the API process: the uploads are
saved under ``<data>/jobs/<id>/uploads``, a detect job is submitted with
:func:`tigertrap.core.jobs.submit_job`, and its ``md.json`` is read back when the job ends. The
folder is removed when the request ends (unless ``KEEP_UPLOADS``); folders left by a process
that died mid-request are removed at start-up once older than twice ``DETECT_TIMEOUT_S``.
``inprocess`` imports ``megadetector`` (lazily, at start-up) and runs it here; for a single
machine without a detect worker.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from PIL import Image
from starlette.concurrency import run_in_threadpool

from tigertrap.classify.api.config import ApiSettings
from tigertrap.classify.api.pixel_budget import PixelBudget
from tigertrap.classify.api.uploads import Upload, safe_name, use_decoded
from tigertrap.core.jobs import FINISHED, StageRequest, cancel_job, job_status, submit_job
from tigertrap.core.md_results import Detection, read_md_results
from tigertrap.core.megadetector import load_megadetector, megadetector_output_to_stderr
from tigertrap.core.paths import atomic_write_bytes

__all__ = [
    "DetectionFailed",
    "Detector",
    "InProcessDetector",
    "QueueDetector",
    "make_detector",
]

JOBS_DIR = "jobs"
UPLOADS_DIR = "uploads"
MD_FILE = "md.json"
WEIGHTS_SUFFIXES = (".pt", ".pb", ".onnx", ".torchscript")
#: A request folder older than this many ``DETECT_TIMEOUT_S`` belongs to no waiting request.
STALE_AFTER_TIMEOUTS = 2


class DetectionFailed(Exception):
    """Detection could not run; ``status_code`` is 502 (failed) or 504 (timed out)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


class Detector(Protocol):
    """Finds animals, people and vehicles in full frames."""

    async def detect(self, uploads: Sequence[Upload]) -> list[list[Detection]]:
        """Detections at or above the threshold for each upload, in order, best first."""
        ...


class QueueDetector:
    """Runs detection as a job on the ``detect`` queue and waits for its ``md.json``."""

    def __init__(self, settings: ApiSettings) -> None:
        self.settings = settings
        self.root = settings.data_root()
        if not settings.keep_uploads:
            self._remove_stale_folders()

    def _remove_stale_folders(self) -> None:
        """Remove request folders that no request can still be waiting for."""
        jobs = self.root.resolve(JOBS_DIR)
        if not jobs.is_dir():
            return
        oldest = time.time() - STALE_AFTER_TIMEOUTS * self.settings.detect_timeout_s
        for folder in jobs.iterdir():
            if folder.is_dir() and folder.stat().st_mtime < oldest:
                shutil.rmtree(folder, ignore_errors=True)

    def _remove(self, folder: str) -> None:
        if not self.settings.keep_uploads:
            shutil.rmtree(self.root.resolve(folder), ignore_errors=True)

    def _save(self, uploads: Sequence[Upload]) -> tuple[str, list[str]]:
        folder = f"{JOBS_DIR}/{uuid.uuid4().hex}"
        names = [safe_name(upload.name, i) for i, upload in enumerate(uploads)]
        for name, upload in zip(names, uploads, strict=True):
            atomic_write_bytes(self.root.resolve(f"{folder}/{UPLOADS_DIR}/{name}"), upload.data)
        return folder, names

    def _submit(self, folder: str) -> str:
        step = StageRequest(stage="detect", params={
            "INPUT_DIR": f"{folder}/{UPLOADS_DIR}",
            "MD_FILE": f"../{MD_FILE}",  # relative to INPUT_DIR: <folder>/md.json
            "MD_MODEL": self.settings.md_model,
            "THRESHOLD": self.settings.detection_threshold,
            "RECURSIVE": False,
        })
        return submit_job([step], url=self.settings.redis_url)

    async def _wait(self, job_id: str) -> None:
        url = self.settings.redis_url
        deadline = time.monotonic() + self.settings.detect_timeout_s
        while True:
            status = await run_in_threadpool(job_status, job_id, url=url)
            if status.status == "succeeded":
                return
            if status.status in FINISHED:
                raise DetectionFailed(502, f"detection job {job_id} {status.status}: "
                                           f"{status.error or 'no error recorded'}")
            if time.monotonic() > deadline:
                await run_in_threadpool(cancel_job, job_id, url=url)
                raise DetectionFailed(504, f"detection job {job_id} did not finish within "
                                           f"{self.settings.detect_timeout_s:g} s (is a detect "
                                           "worker running?)")
            await asyncio.sleep(self.settings.detect_poll_s)

    async def detect(self, uploads: Sequence[Upload]) -> list[list[Detection]]:
        folder, names = await run_in_threadpool(self._save, uploads)
        try:
            job_id = await run_in_threadpool(self._submit, folder)
            await self._wait(job_id)
            results = await run_in_threadpool(
                lambda: read_md_results(self.root.resolve(f"{folder}/{MD_FILE}")).by_file())
        finally:
            await run_in_threadpool(self._remove, folder)
        detections = []
        for name, upload in zip(names, uploads, strict=True):
            entry = results.get(f"{UPLOADS_DIR}/{name}")
            if entry is None or entry.failure:
                reason = entry.failure if entry else "missing from the detector's output"
                raise DetectionFailed(502, f"file {upload.name!r}: detection failed: {reason}")
            detections.append(list(entry.detections or []))
        return detections


class InProcessDetector:
    """MegaDetector loaded in this process (``DETECTION_MODE=inprocess``); each frame is
    decoded within ``budget`` for its forward pass and dropped after it."""

    def __init__(self, settings: ApiSettings, budget: PixelBudget) -> None:
        self.settings = settings
        self.budget = budget
        self._model: Any = None
        self._lock = threading.Lock()  # one forward pass at a time; the model is not reentrant

    def load(self) -> None:
        """Import megadetector and load ``MD_MODEL`` (a known name or a data-root weights file)."""
        model = self.settings.md_model
        if model.lower().endswith(WEIGHTS_SUFFIXES):
            model = str(self.settings.data_root().resolve(model, must_exist=True))
        self._model = load_megadetector(model, {"force_cpu": True})

    def _detect_one(self, image: Image.Image) -> list[Detection]:
        threshold = self.settings.detection_threshold
        with self._lock, megadetector_output_to_stderr():
            output = self._model.generate_detections_one_image(
                image, "upload", detection_threshold=threshold)
        if output.get("failure"):
            raise DetectionFailed(502, f"detection failed: {output['failure']}")
        detections = [Detection(category=str(d["category"]), conf=float(d["conf"]),
                                bbox=tuple(float(v) for v in d["bbox"]))
                      for d in output.get("detections") or [] if float(d["conf"]) >= threshold]
        return sorted(detections, key=lambda d: d.conf, reverse=True)

    async def detect(self, uploads: Sequence[Upload]) -> list[list[Detection]]:
        if self._model is None:
            await run_in_threadpool(self.load)
        return [await use_decoded(upload, self.budget, self._detect_one) for upload in uploads]


def make_detector(settings: ApiSettings, budget: PixelBudget) -> QueueDetector | InProcessDetector:
    """The detector ``DETECTION_MODE`` asks for (an in-process one is loaded by the caller;
    it decodes frames within ``budget``)."""
    if settings.detection_mode == "inprocess":
        return InProcessDetector(settings, budget)
    return QueueDetector(settings)
