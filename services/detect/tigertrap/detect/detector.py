"""A loaded MegaDetector: images in, MD-format results out, through the ``megadetector`` package.

The model is loaded by ``megadetector.detection.run_detector.load_detector`` and run by its
``generate_detections_one_batch`` (MegaDetector's own preprocessing, NMS and box conversion), so
results match ``run_detector_batch``'s. tigertrap changes one thing: images are opened with
:func:`tigertrap.core.images.open_image`, so a truncated JPEG is a ``failure`` entry rather
than an image with a grey bottom half (megadetector switches Pillow's ``LOAD_TRUNCATED_IMAGES``
on). :meth:`MegaDetector.prepare` (open + letterbox) is thread-safe, so several threads can
prepare images while the model runs.

A loaded model is kept for the life of the process (a Celery worker's pool child) and reused by
later runs: :func:`loaded_model` keys it by the weights file (resolved path, size, mtime and
inode, so a file replaced in place loads afresh) and the device, keeps the
:data:`MODEL_CACHE_SIZE` most recently used ones, and drops a model as soon as its file has
changed. ``KEEP_MODEL=false`` (:class:`tigertrap.detect.config.DetectSettings`) loads per run.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tigertrap.core.images import ImageLoadError, open_image
from tigertrap.core.md_results import Detection, ImageResult
from tigertrap.core.megadetector import load_megadetector, megadetector_output_to_stderr
from tigertrap.detect.weights import DetectorWeights

__all__ = [
    "FAILURE_IMAGE_OPEN",
    "FAILURE_INFER",
    "MODEL_CACHE_SIZE",
    "MegaDetector",
    "ModelKey",
    "PreparedImage",
    "clear_loaded_models",
    "loaded_model",
    "model_loads",
]

log = logging.getLogger(__name__)

#: MegaDetector's failure strings; tigertrap appends the reason.
FAILURE_IMAGE_OPEN = "image access failure"
FAILURE_INFER = "inference failure"


@dataclass
class PreparedImage:
    """An image ready for the model: ``model_input`` is what megadetector's batch call takes."""

    file: str
    model_input: Any
    width: int
    height: int


#: Models kept loaded per process: two, so that a worker serving jobs of two detectors (MDv5a
#: and MDv5b) does not reload on every alternation; each MDv5 holds ~0.5 GB of memory.
MODEL_CACHE_SIZE = 2


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class ModelKey:
    """What makes two loads the same model: the weights file as it is now, and the device."""

    path: str
    size: int
    mtime_ns: int
    inode: int
    #: ``None``: megadetector's choice on a GPU; ``cpu`` when forced onto the CPU.
    device: str | None

    @classmethod
    def of(cls, weights: Path, device: str | None) -> ModelKey:
        """The key of ``weights`` as the file is now (``stat`` follows symlinks)."""
        resolved = weights.resolve()
        stat = resolved.stat()
        return cls(str(resolved), stat.st_size, stat.st_mtime_ns, stat.st_ino, device)


class _LoadedModels:
    """A small most-recently-used cache of loaded models, safe to use from several threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.loads = 0
        self._models: OrderedDict[ModelKey, Any] = OrderedDict()
        # One lock around look-up and load: two threads asking for one model load it once.
        self.lock = threading.Lock()

    def get(self, key: ModelKey, weights: Path, options: dict[str, Any]) -> Any:
        with self.lock:
            model = self._models.get(key)
            if model is not None:
                self._models.move_to_end(key)
                return model
            # The file changed (or another device was asked for): never serve the old model,
            # and free its memory before loading the new one.
            for stale in [k for k in self._models if k.path == key.path]:
                del self._models[stale]
            while len(self._models) >= self.size:
                self._models.popitem(last=False)
            model = _load(weights, key, options)
            self.loads += 1
            self._models[key] = model
            return model

    def clear(self) -> None:
        with self.lock:
            self._models.clear()


def _load(weights: Path, key: ModelKey, options: dict[str, Any]) -> Any:
    log.info("loading MegaDetector weights %s (device %s)", weights, key.device or "auto")
    # The path as given, not resolved: megadetector reads the model's version from its name.
    return load_megadetector(str(weights), options)


_LOADED = _LoadedModels(MODEL_CACHE_SIZE)


def loaded_model(weights: Path, device: str | None, options: dict[str, Any], *,
                 keep: bool = True) -> Any:
    """The model of ``weights`` on ``device``, loaded now or kept from an earlier call.

    ``keep=False`` loads a fresh model and keeps nothing (the behaviour before the cache).
    """
    key = ModelKey.of(weights, device)
    if not keep:
        with _LOADED.lock:
            _LOADED.loads += 1
        return _load(weights, key, options)
    return _LOADED.get(key, weights, options)


def model_loads() -> int:
    """How many times this process has loaded a model from disk (for tests and benchmarks)."""
    return _LOADED.loads


def clear_loaded_models() -> None:
    """Forget every kept model (their memory is freed once no run uses them)."""
    _LOADED.clear()


class MegaDetector:
    """MegaDetector weights loaded on one device."""

    def __init__(self, weights: DetectorWeights, *, device: str | None = None,
                 image_size: int | None = None, batch_size: int = 1,
                 keep_model: bool = True) -> None:
        self.weights = weights
        self.image_size = image_size
        self.on_gpu = device != "cpu" and (bool(device) or _cuda_available())
        #: Batching only pays on a GPU; on a CPU megadetector runs one image at a time too.
        self.batch_size = batch_size if self.on_gpu else 1
        options: dict[str, Any] = {"force_cpu": not self.on_gpu}
        if device:
            options["device"] = device
        key_device = device or (None if self.on_gpu else "cpu")
        self._model = loaded_model(weights.path, key_device, options, keep=keep_model)
        self._preprocess = getattr(self._model, "preprocess_image", None)

    def prepare(self, image: Path, file: str) -> PreparedImage | ImageResult:
        """Open and letterbox one image; an unreadable one becomes a failure entry."""
        try:
            picture = open_image(image)
        except ImageLoadError as error:
            return ImageResult(file=file, failure=f"{FAILURE_IMAGE_OPEN}: {error.reason}")
        width, height = picture.size
        if self._preprocess is None:  # detectors without a separate preprocessing step
            return PreparedImage(file, picture, width, height)
        try:
            with megadetector_output_to_stderr():
                prepared = self._preprocess(picture, image_id=file, image_size=self.image_size)
        except Exception as error:  # megadetector's letterboxing failing on an odd image
            return ImageResult(file=file, failure=f"{FAILURE_IMAGE_OPEN}: {error}")
        prepared.pop("img_original_pil", None)  # not needed for detection; frees memory early
        return PreparedImage(file, prepared, width, height)

    def detect(self, batch: list[PreparedImage], threshold: float) -> list[ImageResult]:
        """Run the model on prepared images; one result per image, in order."""
        inputs = [item.model_input for item in batch]
        files = [item.file for item in batch]
        with megadetector_output_to_stderr():
            try:
                raw = self._model.generate_detections_one_batch(
                    inputs, files, detection_threshold=threshold, image_size=self.image_size)
            except Exception as error:  # e.g. out of GPU memory: the batch fails, the run goes on
                return [ImageResult(file=f, failure=f"{FAILURE_INFER}: {error}") for f in files]
        return [_to_result(item, output) for item, output in zip(batch, raw, strict=True)]


def _to_result(item: PreparedImage, output: dict[str, Any]) -> ImageResult:
    failure = output.get("failure")
    if failure:
        return ImageResult(file=item.file, failure=str(failure))
    detections = [Detection(category=str(d["category"]), conf=float(d["conf"]),
                            bbox=tuple(float(v) for v in d["bbox"]))
                  for d in output.get("detections") or []]
    return ImageResult(file=item.file, detections=detections, width=item.width,
                       height=item.height)
