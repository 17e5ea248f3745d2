"""Leak-free splits by group: every group (a camera location, or a sequence) lies in exactly one
split, so test accuracy never measures memory of a background seen in training.

:func:`assign_groups` is the one rule for it: the download stage splits LILA manifests with it,
and ``tigertrap review export`` splits reviewed crops with it. :func:`stable_key` gives the
seed-dependent order that breaks ties (and that download's sampling uses).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping

__all__ = ["assign_groups", "stable_key"]

_KEY_BYTES = 8


def stable_key(text: str, seed: int) -> int:
    """A 64-bit number from ``text`` that depends only on ``text`` and ``seed``."""
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=_KEY_BYTES,
                             key=str(seed).encode("ascii"))
    return int.from_bytes(digest.digest(), "little")


def assign_groups(class_counts: Mapping[str, Counter[str]], fractions: Mapping[str, float],
                  seed: int) -> dict[str, str]:
    """Map each group to a split.

    Args:
        class_counts: group -> images per class in that group.
        fractions: split -> wanted share of each class's images (summing to 1).
        seed: breaks ties between groups of equal size.

    Groups are placed largest first, each into the split that most lacks that group's classes
    (deficits weighted per class, so a rare class is spread as well as a common one).
    """
    totals: Counter[str] = Counter()
    for counts in class_counts.values():
        totals.update(counts)
    splits = [split for split in fractions if fractions[split] > 0]
    placed: dict[str, Counter[str]] = {split: Counter() for split in splits}
    order = sorted(class_counts, key=lambda group: (-sum(class_counts[group].values()),
                                                    stable_key(group, seed)))
    assignment = {}
    for group in order:
        counts = class_counts[group]

        def lack(split: str, counts: Counter[str] = counts) -> float:
            return sum(n * (fractions[split] * totals[c] - placed[split][c]) / totals[c]
                       for c, n in counts.items())

        best = max(splits, key=lack)
        assignment[group] = best
        placed[best].update(counts)
    return assignment
