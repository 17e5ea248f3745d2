"""Species for uploads: the loaded bundle's inference engine, top-k and the tiger flag.

A crop reaches the model as in training and in batch mode
(:mod:`tigertrap.classify.model_input`): a detection is cut at the manifest's snip size and crop
method, then resized to the model's input size. An uploaded crop stands for a snip and is only
resized.

Images are decoded one at a time (:func:`~tigertrap.classify.api.uploads.use_decoded`): an
uploaded crop becomes its model input, a full frame its detections' model inputs, and the
decoded image is dropped before the next one is decoded. Crops go to the engine's queue in parts
of at most half its capacity (``MAX_QUEUE``), each part after the previous one is classified, so
a request with more crops than the queue can hold still succeeds on an idle server; 503 (a full
queue) only ever means that other requests are using it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from PIL import Image

from tigertrap.classify.api.detection import DetectionFailed, Detector
from tigertrap.classify.api.pixel_budget import PixelBudget
from tigertrap.classify.api.schemas import ClassifiedImage, DetectionResult, SpeciesScore
from tigertrap.classify.api.uploads import Upload, check_decodable, use_decoded
from tigertrap.classify.engine import EngineOverloaded, InferenceEngine
from tigertrap.classify.model_input import crop_inputs, image_input
from tigertrap.core.detections import ANIMALS, category_ids, qualifying
from tigertrap.core.md_results import Detection

__all__ = ["SpeciesClassifier", "classify_uploads"]

ANIMAL = "1"
ANIMAL_LABEL = "animal"
#: MegaDetector's categories.
DETECTION_LABELS = {"1": "animal", "2": "person", "3": "vehicle"}
#: The categories the API classifies, by name in its detector's categories.
ANIMAL_IDS = category_ids(DETECTION_LABELS, ANIMALS)
#: In crops mode the whole upload is the detection.
WHOLE_IMAGE = (0.0, 0.0, 1.0, 1.0)


class SpeciesClassifier:
    """Classifies crops on a started :class:`InferenceEngine`.

    Args:
        engine: a started engine.
        top_k: classes reported per crop.
        tiger_class: the class that sets the tiger flag (absent from the model: never set).
        tiger_threshold: score from which a crop is a tiger; None means "when tiger is the
            top class".
    """

    def __init__(self, engine: InferenceEngine, *, top_k: int, tiger_class: str,
                 tiger_threshold: float | None) -> None:
        self.engine = engine
        self.names = list(engine.class_map.names)
        self.top_k = min(top_k, len(self.names))
        self.tiger_index = self.names.index(tiger_class) if tiger_class in self.names else None
        self.tiger_threshold = tiger_threshold

    @property
    def name(self) -> str:
        """The bundle's name."""
        return self.engine.manifest.name

    def model_input(self, crop: Image.Image) -> np.ndarray:
        """An uploaded crop as the model's ``uint8`` input."""
        return image_input(crop, self.engine.input_size)

    def detection_inputs(self, image: Image.Image, detections: Sequence[Detection]
                         ) -> list[np.ndarray | None]:
        """Model inputs for the detections of a full frame (None: a box with no area)."""
        inputs, kept = crop_inputs(image, [d.bbox for d in detections], self.engine.manifest)
        by_position: list[np.ndarray | None] = [None] * len(detections)
        for row, position in enumerate(kept):
            by_position[position] = inputs[row]
        return by_position

    @property
    def part_size(self) -> int:
        """Crops of one request queued at once: half the engine's queue, so that a part fits
        beside other requests' crops."""
        return max(1, self.engine.stats()["queue_capacity"] // 2)

    async def _part_probabilities(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        futures = []
        try:
            for crop in crops:
                futures.append(self.engine.submit(crop))
        except EngineOverloaded:
            for future in futures:
                future.cancel()
            raise
        return list(await asyncio.gather(*(asyncio.wrap_future(f) for f in futures)))

    async def probabilities(self, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Class probabilities for each crop, batched with other requests' crops; queued in
        parts of :attr:`part_size`, each after the previous one is done.

        Raises:
            EngineOverloaded: the engine's queue is full; nothing of this request stays queued.
        """
        size = self.part_size
        results: list[np.ndarray] = []
        for start in range(0, len(crops), size):
            results += await self._part_probabilities(crops[start:start + size])
        return results

    def species(self, probabilities: np.ndarray) -> list[SpeciesScore]:
        """The top-k classes, best first."""
        order = np.argsort(-probabilities, kind="stable")[: self.top_k]
        return [SpeciesScore(name=self.names[i], score=round(float(probabilities[i]), 4))
                for i in order]

    def is_tiger(self, probabilities: np.ndarray) -> bool:
        """Whether this crop counts as a tiger (see the class docstring)."""
        if self.tiger_index is None:
            return False
        if self.tiger_threshold is None:
            return int(np.argmax(probabilities)) == self.tiger_index
        return float(probabilities[self.tiger_index]) >= self.tiger_threshold


def _best(detections: Sequence[DetectionResult]) -> str | None:
    scored = [d.species[0] for d in detections if d.species]
    return max(scored, key=lambda s: s.score).name if scored else None


async def _classify_crops(uploads: Sequence[Upload], classifier: SpeciesClassifier,
                          budget: PixelBudget) -> list[ClassifiedImage]:
    # A crop is only resized to the input size, so a large JPEG may be decoded at 1/2..1/8.
    size = classifier.engine.input_size
    inputs = [await use_decoded(upload, budget, classifier.model_input, draft_size=(size, size))
              for upload in uploads]
    results = []
    for upload, probabilities in zip(uploads, await classifier.probabilities(inputs),
                                     strict=True):
        detection = DetectionResult(category=ANIMAL, label=ANIMAL_LABEL, conf=None,
                                    bbox=list(WHOLE_IMAGE),
                                    species=classifier.species(probabilities),
                                    tiger=classifier.is_tiger(probabilities))
        results.append(ClassifiedImage(file=upload.name, width=upload.width,
                                       height=upload.height, detections=[detection],
                                       top_species=_best([detection]), tiger=detection.tiger))
    return results


def _frame_inputs(classifier: SpeciesClassifier, image: Image.Image,
                  detections: Sequence[Detection], lower_conf: float
                  ) -> list[tuple[Detection, np.ndarray | None]]:
    # Only animals at or above LOWER_CONF are classified; the rest are reported as detected.
    wanted = [detections[i] for i in qualifying(detections, ANIMAL_IDS, lower_conf)]
    crops = dict(zip(map(id, wanted), classifier.detection_inputs(image, wanted), strict=True))
    return [(detection, crops.get(id(detection))) for detection in detections]


async def _classify_frame(upload: Upload, detections: Sequence[Detection],
                          classifier: SpeciesClassifier, lower_conf: float,
                          budget: PixelBudget) -> ClassifiedImage:
    pairs = await use_decoded(
        upload, budget, lambda image: _frame_inputs(classifier, image, detections, lower_conf))
    crops = [crop for _, crop in pairs if crop is not None]
    scores = iter(await classifier.probabilities(crops))
    results = []
    for detection, crop in pairs:
        probabilities = next(scores) if crop is not None else None
        results.append(DetectionResult(
            category=detection.category,
            label=DETECTION_LABELS.get(detection.category, detection.category),
            conf=round(detection.conf, 3), bbox=[round(v, 4) for v in detection.bbox],
            species=classifier.species(probabilities) if probabilities is not None else [],
            tiger=probabilities is not None and classifier.is_tiger(probabilities)))
    return ClassifiedImage(file=upload.name, width=upload.width,
                           height=upload.height, detections=results,
                           top_species=_best(results), tiger=any(d.tiger for d in results))


async def classify_uploads(uploads: Sequence[Upload], mode: str, classifier: SpeciesClassifier,
                           detector: Detector | None, lower_conf: float,
                           budget: PixelBudget) -> list[ClassifiedImage]:
    """Results for each upload: ``crops`` classifies each upload whole; ``full`` runs the
    detector first and classifies each animal detection at or above ``lower_conf``. Images are
    decoded one at a time within ``budget``.

    Raises:
        UploadRejected: an image does not decode (422).
        EngineOverloaded: the inference queue is full.
        PixelBudgetExhausted: the process's pixel budget stayed full.
        DetectionFailed: the detector could not run (full mode).
    """
    if mode == "crops":
        return await _classify_crops(uploads, classifier, budget)
    if detector is None:
        raise DetectionFailed(503, "full-frame mode is not available: no detector configured")
    await check_decodable(uploads, budget)
    frames = await detector.detect(uploads)
    return [await _classify_frame(upload, detections, classifier, lower_conf, budget)
            for upload, detections in zip(uploads, frames, strict=True)]
