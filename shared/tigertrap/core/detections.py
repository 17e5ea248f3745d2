"""Which detections of a MegaDetector file a stage works on: the *qualifying* detections.

One definition, used by snip (what it crops), classify (what it classifies and counts) and the
API (which boxes of a frame get species):

    A detection qualifies when the name its category has in the file's
    ``detection_categories`` is one of the stage's category names (compared without regard to
    case), and its ``conf`` is at least the stage's ``LOWER_CONF``.

Category *names* are matched, not ids: the ids are the file's own numbering (MegaDetector
writes ``"1": "animal"``, another detector may number its classes otherwise), while a stage's
setting says what it wants in the field's words. A file without ``detection_categories`` has
MegaDetector's (:data:`tigertrap.core.md_results.DEFAULT_DETECTION_CATEGORIES`), as
:class:`~tigertrap.core.md_results.MDResults` reads it; a file that names none of the stage's
categories has no qualifying detection. Settings may give MegaDetector's ids (``1``, ``2``,
``3``) as shorthand: :func:`category_names` turns them into names first.

Stages' category names: snip's ``CATEGORIES`` setting (default ``animal``); classify and the API
classify species, so theirs is :data:`ANIMALS`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from tigertrap.core.md_results import DEFAULT_DETECTION_CATEGORIES, Detection

__all__ = [
    "ANIMALS",
    "MEGADETECTOR_CATEGORY_NAMES",
    "category_ids",
    "category_names",
    "qualifying",
]

#: The categories a species classifier works on.
ANIMALS: tuple[str, ...] = ("animal",)
#: MegaDetector's category names, the names a stage's setting may use.
MEGADETECTOR_CATEGORY_NAMES: tuple[str, ...] = tuple(DEFAULT_DETECTION_CATEGORIES.values())


def category_names(items: Iterable[str]) -> list[str]:
    """Category names from a setting's values: names (any case) or MegaDetector's ids.

    Raises:
        ValueError: a value that is neither a MegaDetector category name nor its id; the
            message lists the accepted values.
    """
    names = []
    for item in items:
        name = DEFAULT_DETECTION_CATEGORIES.get(item.strip(), item.strip().lower())
        if name not in MEGADETECTOR_CATEGORY_NAMES:
            raise ValueError(f"unknown category {item!r}; use "
                             f"{', '.join(MEGADETECTOR_CATEGORY_NAMES)} or "
                             f"{', '.join(DEFAULT_DETECTION_CATEGORIES)}")
        if name not in names:
            names.append(name)
    return names


def category_ids(detection_categories: Mapping[str, str], names: Iterable[str]
                 ) -> frozenset[str]:
    """The ids ``detection_categories`` (a file's id -> name map) gives ``names``."""
    wanted = {name.lower() for name in names}
    return frozenset(cid for cid, name in detection_categories.items()
                     if str(name).lower() in wanted)


def qualifying(detections: Sequence[Detection], ids: Collection[str], lower_conf: float
               ) -> list[int]:
    """Indices, in file order, of the detections whose category is in ``ids`` (from
    :func:`category_ids`) with ``conf >= lower_conf``."""
    return [index for index, detection in enumerate(detections)
            if detection.category in ids and detection.conf >= lower_conf]
