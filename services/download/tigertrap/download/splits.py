"""Leak-free splits: every location (or sequence) lies in exactly one split.

Frames from one camera share background, light and often the very animal; if a location is in
both train and test, test accuracy measures memory. :func:`assign_groups` (core's
:mod:`tigertrap.core.group_splits`, shared with the review export) gives whole groups to
train/val/test so that each class comes close to the configured fractions, and
:func:`split_report` recomputes, from the manifest alone, the evidence that no group spans two
splits (written as ``split_report.json``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from tigertrap.core.group_splits import assign_groups
from tigertrap.download.manifest import ManifestRow
from tigertrap.download.spec import REGULAR_SPLITS

__all__ = ["SPLIT_REPORT_FILE", "SplitBy", "assign_groups", "group_of", "split_report"]

SPLIT_REPORT_FILE = "split_report.json"
SplitBy = Literal["location", "sequence"]


def group_of(row: ManifestRow, split_by: SplitBy) -> str:
    """The group key of a manifest row ('' for sources without locations, e.g. CVWC)."""
    return row.location if split_by == "location" else row.sequence


def _leaks(rows: Iterable[ManifestRow], key: SplitBy) -> dict[str, list[str]]:
    splits_of: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        group = group_of(row, key)
        if group and row.split in REGULAR_SPLITS:
            splits_of[group].add(row.split)
    return {group: sorted(found) for group, found in sorted(splits_of.items()) if len(found) > 1}


def split_report(rows: list[ManifestRow], split_by: SplitBy,
                 params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Counts per split and class, groups per split, and every group found in two regular
    splits (``leaks``; empty when the split is clean). Holdout splits (e.g. ``test2``) are
    reported apart: sharing a location with train is recorded, not a leak."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    groups: dict[str, set[str]] = defaultdict(set)
    ungrouped: Counter[str] = Counter()
    for row in rows:
        counts[row.split][row.class_name] += 1
        group = group_of(row, split_by)
        if group:
            groups[row.split].add(group)
        else:
            ungrouped[row.source] += 1
    regular = {split for split in counts if split in REGULAR_SPLITS}
    regular_groups = set().union(*(groups[split] for split in regular)) if regular else set()
    regular_total = sum(sum(counts[split].values()) for split in regular) or 1
    leaks = _leaks(rows, split_by)
    return {
        "split_by": split_by,
        "leak_free": not leaks,
        "leaks": leaks,
        "sequence_leaks": len(_leaks(rows, "sequence")),
        "location_leaks": len(_leaks(rows, "location")),
        "images": {split: sum(found.values()) for split, found in sorted(counts.items())},
        "fractions": {split: round(sum(counts[split].values()) / regular_total, 4)
                      for split in sorted(regular)},
        "classes": {split: dict(sorted(found.items())) for split, found in sorted(counts.items())},
        "groups": {split: len(found) for split, found in sorted(groups.items())},
        "holdout_groups_also_in_regular_splits": {
            split: len(groups[split] & regular_groups)
            for split in sorted(counts) if split not in REGULAR_SPLITS},
        "images_without_group": dict(sorted(ungrouped.items())),
        "params": dict(params or {}),
    }
