"""A classify job's results into the review store.

:func:`detection_rows` reads a classified MegaDetector file (format 1.6 with
``classification_categories`` and per-detection ``classifications``, as the classify stage
writes it) and yields one store row per classified detection: the crop reference (``file``,
``detection_index``, ``bbox``, ``conf``), the top-k, the tiger score (the tiger class's score
when it is in the top-k, else null), the tiger flag (the image's ``tiger`` flag, for detections
with tiger in their top-k; or, in files without the flag, tiger scoring at the threshold),
and the uncertainty measures the queues sort by.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from pathlib import PurePosixPath
from typing import Any

from tigertrap.core.md_results import MDResults

__all__ = ["detection_rows", "entropy", "location_of", "margin", "qc_rank"]


def margin(scores: Sequence[float]) -> float:
    """Top-1 minus top-2 score (the top-1 score when there is only one)."""
    ranked = sorted(scores, reverse=True)
    return ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)


def entropy(scores: Sequence[float]) -> float:
    """Shannon entropy (nats) of the scores renormalised to sum to 1."""
    total = sum(scores)
    if total <= 0:
        return 0.0
    return -sum(p / total * math.log(p / total) for p in scores if p > 0)


def qc_rank(job: str, file: str, index: int) -> float:
    """A fixed pseudo-random rank in [0, 1): the QC sample is the lowest ranks."""
    digest = hashlib.sha256(f"{job}\0{file}\0{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def location_of(entry: Any) -> str:
    """The camera of an image entry: its ``location`` field, else the image's folder."""
    location = (entry.model_extra or {}).get("location")
    if location:
        return str(location)
    return str(PurePosixPath(entry.file.replace("\\", "/")).parent)


def detection_rows(results: MDResults, job: str, tiger_class: str,
                   tiger_threshold: float | None) -> Iterator[dict[str, Any]]:
    """Store rows for every classified detection of ``results``."""
    names = results.classification_categories or {}
    for entry in results.images:
        extra = entry.model_extra or {}
        for index, detection in enumerate(entry.detections or []):
            if not detection.classifications:
                continue
            top_k = sorted(((names.get(cid, cid), float(score))
                            for cid, score in detection.classifications),
                           key=lambda pair: pair[1], reverse=True)
            scores = [score for _, score in top_k]
            tiger_score = next((s for name, s in top_k if name == tiger_class), None)
            if "tiger" in extra:
                flag = bool(extra["tiger"]) and tiger_score is not None
            elif tiger_threshold is not None:
                flag = tiger_score is not None and tiger_score >= tiger_threshold
            else:
                flag = top_k[0][0] == tiger_class
            yield {
                "file": entry.file, "detection_index": index, "bbox": list(detection.bbox),
                "conf": float(detection.conf), "top_k": [list(pair) for pair in top_k],
                "tiger_score": tiger_score, "tiger_flag": flag, "margin": margin(scores),
                "entropy": entropy(scores), "location": location_of(entry),
                "qc_rank": qc_rank(job, entry.file, index),
            }


def intake_job(store: Any, data_root: Any, *, name: str, md_file: str,
               image_base: str | None = None, tiger_class: str = "tiger",
               tiger_threshold: float | None = None) -> int:
    """Bring the classified MD file ``md_file`` (relative to the data root) into ``store`` as
    review job ``name``; ``image_base`` (default: the MD file's folder) is where its ``file``
    values lie. Returns the number of detections added.

    Raises:
        ValueError: the file holds no classifications (not a classify stage output).
    """
    from tigertrap.core.md_results import read_md_results
    from tigertrap.core.paths import DataRoot

    root = DataRoot(data_root)
    md_path = root.resolve(md_file, must_exist=True)
    results = read_md_results(md_path)
    if not results.classification_categories:
        raise ValueError(f"{md_file} has no classification_categories: give the classified "
                         "MD file the classify stage wrote (md_classified.json)")
    base = image_base if image_base is not None else root.relative(md_path.parent)
    root.resolve(base, must_exist=True)
    classes = [results.classification_categories[key]
               for key in sorted(results.classification_categories, key=int)]
    rows = list(detection_rows(results, name, tiger_class, tiger_threshold))
    store.add_job(name=name, md_file=root.relative(md_path), image_base=base, classes=classes,
                  tiger_class=tiger_class, tiger_threshold=tiger_threshold, rows=rows)
    return len(rows)
