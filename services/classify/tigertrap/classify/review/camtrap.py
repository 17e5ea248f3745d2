"""People's verdicts into Camtrap DP: the job's classified MD file with each agreed verdict
attached to its detection (``human_verdict``), which :mod:`tigertrap.classify.camtrap_dp`
writes as an observation with ``classificationMethod: human``.

Only agreed verdicts count (every current verdict names the same label); ``unsure`` keeps the
machine's classification, ``not_an_animal`` removes the observation.
"""

from __future__ import annotations

import os
from pathlib import Path

from tigertrap.classify.review.schema import UNSURE
from tigertrap.classify.review.store import ReviewStore, agreed_label, current_verdicts
from tigertrap.core.md_results import read_md_results, write_md_results
from tigertrap.core.paths import DataRoot

__all__ = ["REVIEWED_MD_FILE", "write_reviewed_md"]

#: Written beside the job's images (its ``file`` values are relative to that folder).
REVIEWED_MD_FILE = "md_reviewed.json"


def write_reviewed_md(store: ReviewStore, data_root: str | os.PathLike[str], job: str) -> Path:
    """Write the job's MD file with ``human_verdict`` on each detection people agreed on;
    return its path (``<image_base>/md_reviewed.json``)."""
    root = DataRoot(data_root)
    record = store.job(job)
    results = read_md_results(root.resolve(record["md_file"], must_exist=True))
    history = store.job_history(job)
    verdicts = {}
    for row in store.detections(job):
        current = current_verdicts(history[row["id"]])
        label = agreed_label(current) if current else None
        if label is None or label == UNSURE:
            continue
        latest = max(current, key=lambda v: (v.created_at, v.id))
        verdicts[(row["file"], row["detection_index"])] = {
            "label": label, "reviewer": ", ".join(sorted({v.reviewer for v in current})),
            "timestamp": latest.created_at.replace(microsecond=0).isoformat()}
    for entry in results.images:
        for index, detection in enumerate(entry.detections or []):
            verdict = verdicts.get((entry.file, index))
            if verdict is not None:
                detection.human_verdict = verdict
    target = root.resolve(record["image_base"]) / REVIEWED_MD_FILE
    write_md_results(results, target)
    return target
