"""The checkpoint of a detect run: finished images, durable, append-only.

A run appends its results to ``.<md_file>.checkpoint.jsonl`` beside the output file every
``CHECKPOINT_FREQ`` images (one JSON image entry per line, flushed and fsynced), so a crash or
``kill -9`` loses at most the images since the last checkpoint. The first line records the
detector and settings; a checkpoint from another detector or threshold is discarded, never
mixed in. A line cut short by a kill is dropped when the checkpoint is reopened, and entries
are keyed by file, so no image is counted twice.

Appending keeps checkpoints cheap on runs of hundreds of thousands of images (MegaDetector's own
checkpoints rewrite every result each time). An exclusive lock (``flock``) on
``.<md_file>.lock`` stops two runs from writing the same output at once; the kernel releases it
when the process dies, however it dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from tigertrap.core.md_results import ImageResult
from tigertrap.core.paths import atomic_write_text

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "OutputLocked", "default_checkpoint_path"]

CHECKPOINT_FORMAT = "tigertrap-detect-checkpoint/1"
_FORMAT_KEY = "checkpoint_format"


class OutputLocked(RuntimeError):
    """Another detect run is writing the same output file."""


def default_checkpoint_path(md_file: Path) -> Path:
    """``.<name>.checkpoint.jsonl`` beside ``md_file`` (hidden, so folder scans skip it)."""
    return md_file.with_name(f".{md_file.name}.checkpoint.jsonl")


def _entry_line(entry: ImageResult) -> str:
    return json.dumps(entry.model_dump(mode="json", exclude_none=True), ensure_ascii=False)


class Checkpoint:
    """Finished images of one output file; use as a context manager (holds the lock)."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = {_FORMAT_KEY: CHECKPOINT_FORMAT, **header}
        self.lock_path = path.with_name(path.name.replace(".checkpoint.jsonl", "") + ".lock")
        self.entries: dict[str, ImageResult] = {}
        #: Why an existing checkpoint was not used, if it was not.
        self.discarded: str | None = None
        self._lock: IO[str] | None = None
        self._log: IO[str] | None = None

    def __enter__(self) -> Checkpoint:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = self.lock_path.open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise OutputLocked(f"another detect run is writing {self.path.parent} (lock "
                               f"{self.lock_path}); wait for it or stop it") from None
        self.entries = self._read()
        # Rewrite what survived, so appends start after the last complete line.
        lines = [json.dumps(self.header), *(_entry_line(e) for e in self.entries.values())]
        atomic_write_text(self.path, "\n".join(lines) + "\n")
        self._log = self.path.open("a", encoding="utf-8")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _read(self) -> dict[str, ImageResult]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return {}
        header = _parse(lines[0]) if lines else None
        if header != self.header:
            self.discarded = (f"checkpoint {self.path} is from another detector or settings "
                              f"({header}); starting afresh")
            return {}
        entries: dict[str, ImageResult] = {}
        for line in lines[1:]:
            data = _parse(line)
            if data is None:
                continue  # the last line of a killed run, cut short
            with contextlib.suppress(ValidationError):
                entry = ImageResult.model_validate(data)
                entries[entry.file] = entry
        return entries

    def append(self, entries: Iterable[ImageResult]) -> None:
        """Add finished images durably (written, flushed and fsynced before returning)."""
        batch = list(entries)
        if not batch or self._log is None:
            return
        self._log.write("".join(_entry_line(e) + "\n" for e in batch))
        self._log.flush()
        os.fsync(self._log.fileno())
        for entry in batch:
            self.entries[entry.file] = entry

    def remove(self) -> None:
        """Delete the checkpoint once its results are in the output file."""
        if self._log is not None:
            self._log.close()
            self._log = None
        for path in (self.path, self.lock_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _parse(line: str) -> dict[str, Any] | None:
    try:
        data = json.loads(line)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None
