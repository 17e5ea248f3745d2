"""Streaming LILA BC's metadata file (``lila_image_urls_and_labels.csv``, or its zip).

The file has about 23.7 million rows (32 columns; newer releases add ``subgenus``, 33), ids
prefixed ``<dataset> : ``, and empty datetimes. It is never loaded whole: :func:`scan` reads it
record by record (``csv`` semantics; quote-free records are split directly), decides each
distinct combination of the values the rules read only once, and keeps a few integers per
matching row. :func:`read_records` then reads it again for the chosen records only.
Memory grows with the number of matching rows (about 40 bytes each), not with the file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import operator
import os
import zipfile
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from tigertrap.core.group_splits import stable_key
from tigertrap.download.spec import TAXON_KEY, TAXONOMY_COLUMNS, ClassSpec, normalise

__all__ = [
    "ID_SEPARATOR",
    "REQUIRED_COLUMNS",
    "MetadataError",
    "RuleMatches",
    "ScanResult",
    "iter_records",
    "location_key",
    "open_metadata",
    "read_header",
    "read_records",
    "scan",
    "sequence_key",
    "stable_key",
]

REQUIRED_COLUMNS = ("dataset_name", "url_gcp", "url_aws", "url_azure", "image_id",
                    "sequence_id", "location_id", "datetime")
#: LILA prefixes ids with the dataset's name: ``"WCS Camera Traps : 550"``.
ID_SEPARATOR = " : "
_UNKNOWN_IDS = frozenset({"", "unknown", "none", "nan"})
#: Rows between two progress reports of :func:`scan`.
REPORT_EVERY = 1 << 20


class MetadataError(ValueError):
    """A metadata file that cannot be read or lacks a column the run needs."""


@contextlib.contextmanager
def open_metadata(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """Open the CSV, or the first ``.csv`` inside a zip, as a streaming text file."""
    source = Path(path)
    if not source.is_file():
        raise MetadataError(f"metadata file {source} not found")
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            members = [name for name in archive.namelist() if name.lower().endswith(".csv")]
            if not members:
                raise MetadataError(f"{source}: the zip holds no .csv file")
            with archive.open(members[0]) as raw, \
                    io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
                yield text
        return
    with open(source, encoding="utf-8-sig", newline="") as text:
        yield text


def iter_records(stream: Iterable[str]) -> Iterator[str]:
    """Yield raw CSV records, joining lines that a quoted field spans."""
    pending = ""
    for line in stream:
        if pending:
            pending += line
            if pending.count('"') % 2 == 0:
                yield pending
                pending = ""
        elif '"' in line and line.count('"') % 2:
            pending = line
        else:
            yield line
    if pending:
        yield pending


def _parse(record: str) -> list[str]:
    return next(csv.reader([record]))


def read_header(records: Iterator[str], source: str) -> dict[str, int]:
    """Column name -> index from the first record; raises if a required column is missing."""
    try:
        columns = [name.strip() for name in _parse(next(records))]
    except StopIteration:
        raise MetadataError(f"{source}: the metadata file is empty") from None
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise MetadataError(f"{source}: not LILA metadata; missing column(s) "
                            f"{', '.join(missing)}")
    return {name: index for index, name in enumerate(columns)}


def _known(identifier: str) -> bool:
    return identifier.rpartition(ID_SEPARATOR)[2].strip().lower() not in _UNKNOWN_IDS


def location_key(dataset: str, location_id: str) -> str:
    """The location a row is grouped by: its ``location_id``, or one unknown location per
    dataset when LILA gives none."""
    location = location_id.strip()
    return location if _known(location) else f"{dataset}{ID_SEPARATOR}(unknown location)"


def sequence_key(sequence_id: str, image_id: str) -> str:
    """The sequence a row is grouped by: its ``sequence_id``, or the image itself when LILA
    gives none (``"NACTI : unknown"``)."""
    return sequence_id if _known(sequence_id) else image_id


@dataclass
class RuleMatches:
    """The rows one rule matched, as parallel arrays (one entry per row)."""

    records: array = field(default_factory=lambda: array("Q"))   # record number (0 = 1st row)
    locations: array = field(default_factory=lambda: array("I"))  # index into locations
    sequences: array = field(default_factory=lambda: array("Q"))  # seeded key of the sequence
    images: array = field(default_factory=lambda: array("Q"))     # seeded key of the image

    def __len__(self) -> int:
        return len(self.records)


@dataclass
class ScanResult:
    """What :func:`scan` found: matches per (class, rule) and the location names."""

    rows: int
    columns: int
    matches: dict[tuple[str, str], RuleMatches]
    locations: list[str]
    malformed: int = 0


_Condition = tuple[tuple[int, ...], frozenset[str]]


def _compile(spec: ClassSpec, index: dict[str, int], source: str
             ) -> list[tuple[str, str, list[_Condition]]]:
    taxonomy = tuple(index[name] for name in TAXONOMY_COLUMNS if name in index)
    compiled = []
    for target in spec.classes:
        for rule in target.rules:
            conditions: list[_Condition] = []
            for column, values in rule.conditions.items():
                if column == TAXON_KEY:
                    conditions.append((taxonomy, values))
                elif column in index:
                    conditions.append(((index[column],), values))
                else:
                    raise MetadataError(f"{source}: class {target.name!r} rule {rule.name!r} "
                                        f"reads column {column!r}, which the file lacks")
            compiled.append((target.name, rule.name, conditions))
    return compiled


class _Matcher:
    """Which (class, rule) a row belongs to, decided once per distinct combination of the
    values the rules read (a few thousand species labels in 23.7 million rows)."""

    #: Decisions remembered; a rule on a column with very many values just recomputes.
    CACHE_LIMIT = 200_000

    def __init__(self, compiled: list[tuple[str, str, list[_Condition]]]) -> None:
        self.compiled = compiled
        self.columns = tuple(sorted({column for _, _, conditions in compiled
                                     for columns, _ in conditions for column in columns}))
        #: fields -> the cache key: the one value, or the tuple of values, the rules read.
        self.key = operator.itemgetter(*self.columns) if self.columns else (lambda _: ())
        self.cache: dict[object, tuple[str, str] | None] = {}

    def decide(self, fields: list[str]) -> tuple[str, str] | None:
        """Decide (and remember) for a row whose key is not cached yet."""
        if len(self.cache) >= self.CACHE_LIMIT:
            self.cache.clear()
        normalised = {column: normalise(fields[column]) for column in self.columns}
        decision = next(((target, rule) for target, rule, conditions in self.compiled
                         if all(any(normalised[column] in values for column in columns)
                                for columns, values in conditions)), None)
        self.cache[self.key(fields)] = decision
        return decision


_UNDECIDED = object()


def scan(path: str | os.PathLike[str], spec: ClassSpec, seed: int,
         on_rows: Callable[[int], None] | None = None) -> ScanResult:
    """Find every row each rule matches; a row goes to its first matching (class, rule).

    Records without quotes are split on commas (exactly what ``csv`` returns for them, several
    times faster); records with quotes, possibly spanning lines, go through ``csv``.
    ``on_rows(rows scanned)`` is called every :data:`REPORT_EVERY` rows (it may raise to stop).

    Raises:
        MetadataError: missing file, not LILA metadata, or a rule names an absent column.
    """
    source = str(path)
    with open_metadata(path) as stream:
        index = read_header(iter_records(_first_record(stream)), source)
        compiled = _compile(spec, index, source)
        match = _Matcher(compiled)
        key, cache = match.key, match.cache
        at = {name: index[name] for name in ("dataset_name", "image_id", "location_id",
                                             "sequence_id")}
        last_column = max([*match.columns, *at.values()])
        matches = {(target, rule): RuleMatches() for target, rule, _ in compiled}
        location_ids: dict[str, int] = {}
        number = malformed = 0
        pending = ""
        for line in stream:
            if pending or '"' in line:
                pending += line
                if pending.count('"') % 2:
                    continue
                fields, pending = _parse(pending), ""
            else:
                fields = line.rstrip("\r\n").split(",", last_column + 1)
            number += 1
            if on_rows is not None and number % REPORT_EVERY == 0:
                on_rows(number)
            if len(fields) <= last_column:
                malformed += 1
                continue
            decision = cache.get(key(fields), _UNDECIDED)
            if decision is _UNDECIDED:
                decision = match.decide(fields)
            if decision is not None:
                _add(matches[decision], number - 1, fields, at, location_ids, seed)
        if pending:
            malformed += 1
    return ScanResult(rows=number, columns=len(index), matches=matches,
                      locations=list(location_ids), malformed=malformed)


def _first_record(stream: TextIO) -> Iterator[str]:
    """The lines of the first record (the header) of ``stream``, leaving the rest unread."""
    record = stream.readline()
    yield record
    while record.count('"') % 2:
        line = stream.readline()
        if not line:
            return
        record += line
        yield line


def _add(found: RuleMatches, number: int, fields: list[str], at: dict[str, int],
         location_ids: dict[str, int], seed: int) -> None:
    location = location_key(fields[at["dataset_name"]], fields[at["location_id"]])
    image_id = fields[at["image_id"]]
    found.records.append(number)
    found.locations.append(location_ids.setdefault(location, len(location_ids)))
    found.sequences.append(stable_key(sequence_key(fields[at["sequence_id"]], image_id), seed))
    found.images.append(stable_key(image_id, seed))


def read_records(path: str | os.PathLike[str], wanted: Iterable[int]
                 ) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(record number, row as a dict)`` for the wanted record numbers, in file order
    (record 0 is the first row after the header)."""
    targets = sorted(set(wanted))
    if not targets:
        return
    with open_metadata(path) as stream:
        names = list(read_header(iter_records(_first_record(stream)), str(path)))
        position, number, pending = 0, -1, ""
        for line in stream:
            if pending or '"' in line:
                pending += line
                if pending.count('"') % 2:
                    continue
                line, pending = pending, ""
            number += 1
            if number != targets[position]:
                continue
            yield number, dict(zip(names, _parse(line), strict=False))
            position += 1
            if position == len(targets):
                return
