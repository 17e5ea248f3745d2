"""A loaded MegaDetector: images in, MD-format results out, through the ``megadetector`` package.

The model is loaded by ``megadetector.detection.run_detector.load_detector`` and run by its
``generate_detections_one_batch`` (MegaDetector's own preprocessing, NMS and box conversion), so
results match ``run_detector_batch``'s. tigertrap changes one thing: images are opened with
:func:`tigertrap.core.images.open_image`, so a truncated JPEG is a ``failure`` entry rather
than an image with a grey bottom half (megadetector switches Pillow's ``LOAD_TRUNCATED_IMAGES``
on). :meth:`MegaDetector.prepare` (open + letterbox) is thread-safe, so several threads can
prepare images while the model runs.
"""

from __future__ import annotations

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
    "MegaDetector",
    "PreparedImage",
]

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


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


class MegaDetector:
    """MegaDetector weights loaded on one device."""

    def __init__(self, weights: DetectorWeights, *, device: str | None = None,
                 image_size: int | None = None, batch_size: int = 1) -> None:
        self.weights = weights
        self.image_size = image_size
        self.on_gpu = device != "cpu" and (bool(device) or _cuda_available())
        #: Batching only pays on a GPU; on a CPU megadetector runs one image at a time too.
        self.batch_size = batch_size if self.on_gpu else 1
        options: dict[str, Any] = {"force_cpu": not self.on_gpu}
        if device:
            options["device"] = device
        self._model = load_megadetector(str(weights.path), options)
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
