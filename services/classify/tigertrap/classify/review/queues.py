"""Review queues: which detections of a job to look at, in which order.

Three sections, in this order:

``tiger``
    every tiger-flagged detection, highest tiger score first (each flag is checked by eye);
``uncertain``
    the other detections whose margin between the top two scores is below ``max_margin``
    (default 0.5), lowest margin first (or highest entropy first with ``order="entropy"``);
``qc``
    a fixed pseudo-random sample (``qc_fraction`` of them, at least one) of the remaining,
    confident detections, for quality control.

Counts per section say how many there are and how many have a current verdict; progress is
the reviewed share of the whole queue.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["DEFAULT_MAX_MARGIN", "DEFAULT_QC_FRACTION", "SECTIONS", "Queue", "build_queue",
           "job_queue"]

SECTIONS = ("tiger", "uncertain", "qc")
DEFAULT_MAX_MARGIN = 0.5
DEFAULT_QC_FRACTION = 0.05
Order = Literal["margin", "entropy"]


@dataclass
class Queue:
    """The queue of one job: ``items`` as ``(detection id, section)`` in review order."""

    items: list[tuple[int, str]] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    reviewed: set[int] = field(default_factory=set)

    @property
    def progress(self) -> dict[str, Any]:
        total = sum(c["total"] for c in self.counts.values())
        reviewed = sum(c["reviewed"] for c in self.counts.values())
        return {"total": total, "reviewed": reviewed,
                "fraction": reviewed / total if total else 1.0}


def build_queue(detections: Sequence[Mapping[str, Any]], reviewed: set[int], *,
                order: Order = "margin", max_margin: float = DEFAULT_MAX_MARGIN,
                qc_fraction: float = DEFAULT_QC_FRACTION) -> Queue:
    """The queue over ``detections`` (store rows); ``reviewed`` holds the ids with a current
    verdict."""
    tigers = sorted((d for d in detections if d["tiger_flag"]),
                    key=lambda d: (-(d["tiger_score"] or 0.0), d["id"]))
    rest = [d for d in detections if not d["tiger_flag"]]
    uncertain = [d for d in rest if d["margin"] < max_margin]
    if order == "entropy":
        uncertain.sort(key=lambda d: (-d["entropy"], d["id"]))
    else:
        uncertain.sort(key=lambda d: (d["margin"], d["id"]))
    confident = sorted((d for d in rest if d["margin"] >= max_margin),
                       key=lambda d: (d["qc_rank"], d["id"]))
    sample = confident[:max(1, math.ceil(qc_fraction * len(confident)))] if confident else []
    queue = Queue(reviewed=set(reviewed))
    for section, members in zip(SECTIONS, (tigers, uncertain, sample), strict=True):
        queue.items.extend((d["id"], section) for d in members)
        queue.counts[section] = {"total": len(members),
                                 "reviewed": sum(1 for d in members if d["id"] in reviewed)}
    return queue


def job_queue(store: Any, job_name: str, *, order: Order = "margin",
              max_margin: float = DEFAULT_MAX_MARGIN,
              qc_fraction: float = DEFAULT_QC_FRACTION) -> Queue:
    """The queue of a job in ``store`` (a :class:`~.store.ReviewStore`)."""
    from tigertrap.classify.review.store import current_verdicts

    rows = store.detections(job_name)
    history = store.job_history(job_name)
    reviewed = {i for i, verdicts in history.items() if current_verdicts(verdicts)}
    return build_queue(rows, reviewed, order=order, max_margin=max_margin,
                       qc_fraction=qc_fraction)
