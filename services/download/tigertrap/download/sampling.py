"""Seeded sampling that spreads a class over many locations and sequences.

Thousands of frames from a handful of cameras teach a model those cameras' backgrounds. So
:func:`select_spread` takes rows round-robin: one row from every location (in a seeded order)
before a second row from any, and within a location one frame from every sequence before a
second frame from any. :func:`allocate` shares a class's target between its rules, honouring
per-rule quotas. The same seed and metadata always give the same selection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tigertrap.download.metadata import RuleMatches, stable_key

__all__ = ["allocate", "select_spread"]


def allocate(target: int, available: Sequence[int], quotas: Sequence[int | None]) -> list[int]:
    """How many rows each rule contributes to a class of ``target`` images.

    Rules with a quota get up to their quota (in rule order, within the target); the rest of the
    target is shared equally by the other rules, a rule with fewer rows than its share passing
    the remainder on. Never more than a rule has.
    """
    counts = [0] * len(available)
    left = target
    for index, quota in enumerate(quotas):
        if quota is not None:
            counts[index] = min(quota, available[index], left)
            left -= counts[index]
    open_rules = [index for index, quota in enumerate(quotas) if quota is None]
    while left > 0 and open_rules:
        share, extra = divmod(left, len(open_rules))
        still_open = []
        for position, index in enumerate(open_rules):
            wanted = share + (1 if position < extra else 0)
            given = min(wanted, available[index] - counts[index])
            counts[index] += given
            left -= given
            if counts[index] < available[index]:
                still_open.append(index)
        open_rules = still_open
    return counts


def _rank_within_runs(*keys: np.ndarray) -> np.ndarray:
    """Position of each element inside its run of equal ``keys`` (arrays already sorted)."""
    size = len(keys[0])
    starts = np.zeros(size, dtype=bool)
    starts[0] = True
    for key in keys:
        starts[1:] |= key[1:] != key[:-1]
    run_start = np.maximum.accumulate(np.where(starts, np.arange(size), 0))
    return np.arange(size) - run_start


def select_spread(matches: RuleMatches, count: int, locations: Sequence[str], seed: int
                  ) -> np.ndarray:
    """Indices (into ``matches``) of ``count`` rows taken round-robin over locations and, within
    each location, over sequences; all orders are seeded."""
    size = len(matches)
    if count <= 0 or size == 0:
        return np.zeros(0, dtype=np.int64)
    location = np.frombuffer(matches.locations, dtype=np.uint32)
    sequence = np.frombuffer(matches.sequences, dtype=np.uint64)
    image = np.frombuffer(matches.images, dtype=np.uint64)
    # Frames in each (location, sequence), in seeded image order: the n-th frame of a sequence.
    by_sequence = np.lexsort((image, sequence, location))
    frame_rank = _rank_within_runs(location[by_sequence], sequence[by_sequence])
    # Within a location: first frames of all sequences (in seeded order), then second frames...
    loc_s, seq_s = location[by_sequence], sequence[by_sequence]
    by_turn = np.lexsort((seq_s, frame_rank, loc_s))
    turn = np.empty(size, dtype=np.int64)
    turn[by_sequence[by_turn]] = _rank_within_runs(loc_s[by_turn])
    # Across locations: every location's first turn (locations in seeded order), then seconds...
    used = np.unique(location)
    location_key = np.zeros(int(used.max()) + 1, dtype=np.uint64)
    location_key[used] = [stable_key(locations[i], seed) for i in used]
    order = np.lexsort((image, location_key[location], turn))
    return order[:count]
