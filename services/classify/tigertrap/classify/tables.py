"""The tables of batch mode: ``predictions.csv``, ``images.csv`` and mewc-predict's long table.

Rows are built from the classified :class:`~tigertrap.core.md_results.MDResults` (after its
``file`` values and detection order are final, so every ``file`` and ``detection_index`` names
an entry of the written MD file) and the class scores of each classified detection.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from tigertrap.classify.config import ClassifySettings
from tigertrap.classify.engine import InferenceEngine
from tigertrap.core.detections import ANIMALS, category_ids, qualifying
from tigertrap.core.md_results import MDResults

__all__ = [
    "IMAGE_COLUMNS",
    "LONG_COLUMNS",
    "PREDICTION_COLUMNS",
    "Key",
    "Outcome",
    "animal_ids",
    "csv_text",
    "image_rows",
    "long_rows",
    "prediction_rows",
    "tiger_flags",
    "tiger_rule",
]

PREDICTION_COLUMNS = ["file", "detection_index", "detection_conf", "bbox_x", "bbox_y", "bbox_w",
                      "bbox_h", "class_id", "top_class", "top_prob", "sequence"]
IMAGE_COLUMNS = ["file", "failure", "animals", "classified", "top_class", "top_prob",
                 "max_detection_conf", "tiger_score", "tiger"]
#: mewc-predict's long table (filename, class_id, prob, class_name, class_rank) per detection.
LONG_COLUMNS = ["file", "detection_index", "class_id", "class_name", "prob", "class_rank"]
PROB_DECIMALS = 4
CONF_DECIMALS = 3
BBOX_DECIMALS = 4

Key = tuple[int, int]  # (image entry, detection index in the written order)


def animal_ids(results: MDResults) -> frozenset[str]:
    """The ids of the file's detection categories named "animal" (what classify classifies;
    see :mod:`tigertrap.core.detections`)."""
    return category_ids(results.detection_categories, ANIMALS)


def csv_text(columns: list[str], rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


@dataclass
class Outcome:
    raw: dict[Key, np.ndarray]
    final: dict[Key, np.ndarray]
    sequence_of: dict[Key, str | None]
    failures: dict[int, str]


def prediction_rows(results: MDResults, outcome: Outcome, engine: InferenceEngine
                     ) -> Iterator[dict[str, Any]]:
    for (number, index), probabilities in sorted(outcome.final.items()):
        entry = results.images[number]
        detection = entry.detections[index]  # type: ignore[index]
        top = int(np.argmax(probabilities))
        x, y, w, h = (round(float(v), BBOX_DECIMALS) for v in detection.bbox)
        yield {"file": entry.file, "detection_index": index,
               "detection_conf": round(float(detection.conf), CONF_DECIMALS),
               "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h, "class_id": top,
               "top_class": engine.class_map.name(top),
               "top_prob": round(float(probabilities[top]), PROB_DECIMALS),
               "sequence": outcome.sequence_of.get((number, index)) or ""}


def long_rows(results: MDResults, outcome: Outcome, engine: InferenceEngine
               ) -> Iterator[dict[str, Any]]:
    for (number, index), probabilities in sorted(outcome.final.items()):
        ranks = np.empty(len(probabilities), dtype=int)
        ranks[np.argsort(-probabilities, kind="stable")] = np.arange(1, len(probabilities) + 1)
        for class_id, name in engine.class_map.as_dict().items():
            yield {"file": results.images[number].file, "detection_index": index,
                   "class_id": class_id, "class_name": name,
                   "prob": round(float(probabilities[class_id]), PROB_DECIMALS),
                   "class_rank": int(ranks[class_id])}


def tiger_rule(engine: InferenceEngine, settings: ClassifySettings
               ) -> Callable[[list[np.ndarray]], tuple[float | None, bool]]:
    """``rule(scores of some detections) -> (best tiger score, tiger flag)``: the flag is set by
    a tiger score at the threshold (``TIGER_THRESHOLD``, else the bundle's), or without one by
    tiger being a detection's top class."""
    names = engine.class_map.names
    tiger = names.index(settings.tiger_class) if settings.tiger_class in names else None
    threshold = settings.tiger_threshold
    if threshold is None:
        threshold = engine.manifest.tiger_threshold

    def rule(scores: list[np.ndarray]) -> tuple[float | None, bool]:
        if tiger is None or not scores:
            return None, False
        best = max(float(s[tiger]) for s in scores)
        if threshold is not None:
            return best, best >= threshold
        return best, any(int(np.argmax(s)) == tiger for s in scores)

    return rule


def _keys_per_image(outcome: Outcome) -> dict[int, list[Key]]:
    per_image: dict[int, list[Key]] = {}
    for key in outcome.final:
        per_image.setdefault(key[0], []).append(key)
    return per_image


def tiger_flags(outcome: Outcome, engine: InferenceEngine, settings: ClassifySettings
                ) -> dict[int, tuple[float | None, bool]]:
    """Per image entry with classified detections: ``(tiger score, tiger flag)``. Smoothing
    may lower a single clear tiger frame; the flag takes the higher of raw and smoothed."""
    flag = tiger_rule(engine, settings)
    return {number: flag([outcome.final[k] for k in keys] + [outcome.raw[k] for k in keys])
            for number, keys in _keys_per_image(outcome).items()}


def image_rows(results: MDResults, outcome: Outcome, engine: InferenceEngine,
                settings: ClassifySettings) -> Iterator[dict[str, Any]]:
    per_image = _keys_per_image(outcome)
    animals = animal_ids(results)
    flags = tiger_flags(outcome, engine, settings)
    for number, entry in enumerate(results.images):
        keys = per_image.get(number, [])
        detections = entry.detections or []
        best_key = max(keys, key=lambda k: float(outcome.final[k].max()), default=None)
        top = int(np.argmax(outcome.final[best_key])) if best_key else None
        tiger_score, tiger = flags.get(number, (None, False))
        yield {
            "file": entry.file, "failure": entry.failure or "",
            "animals": len(qualifying(detections, animals, settings.lower_conf)),
            "classified": len(keys),
            "top_class": engine.class_map.name(top) if top is not None else "",
            "top_prob": (round(float(outcome.final[best_key][top]), PROB_DECIMALS)
                         if best_key and top is not None else ""),
            "max_detection_conf": (round(max(float(d.conf) for d in detections), CONF_DECIMALS)
                                   if detections else ""),
            "tiger_score": round(tiger_score, PROB_DECIMALS) if tiger_score is not None else "",
            "tiger": str(tiger).lower(),
        }
