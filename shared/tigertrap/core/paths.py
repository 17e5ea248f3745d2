"""Data-root paths and atomic writes.

Every path in a job or an HTTP request is relative to one data root (``/data`` in containers,
``TIGERTRAP_DATA`` locally). :class:`DataRoot` resolves such paths and refuses any that would
leave the root: ``..`` segments, absolute paths, and symlinks pointing outside.

:func:`atomic_write` is the one way stages write output files: data goes to a temporary name in
the same folder and is renamed into place only when complete, so a killed worker never leaves a
half-written file that looks finished.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "TEMP_SUFFIX",
    "DataRoot",
    "PathOutsideDataRoot",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "remove_partials",
    "within",
]

#: Suffix of in-progress files; never a complete output, safe to delete on restart.
TEMP_SUFFIX = ".partial"


class PathOutsideDataRoot(ValueError):
    """A job or request path that is absolute, climbs out with ``..`` or links outside the root."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"path {str(path)!r} is not allowed: {reason}")
        self.path = str(path)
        self.reason = reason


class DataRoot:
    """The folder all job and request paths are relative to."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def __repr__(self) -> str:
        return f"DataRoot({str(self.root)!r})"

    def resolve(self, relative: str | os.PathLike[str], *, must_exist: bool = False) -> Path:
        """Return the absolute path of ``relative`` under the root.

        Raises:
            PathOutsideDataRoot: the path is absolute, contains ``..`` or resolves (through
                symlinks) to somewhere outside the root.
            FileNotFoundError: ``must_exist`` is set and nothing is there.
        """
        text = str(relative)
        if not text.strip():
            raise PathOutsideDataRoot(text, "the path is empty")
        candidate = Path(text)
        if candidate.is_absolute() or text.startswith(("/", "\\")):
            raise PathOutsideDataRoot(text, "absolute paths are refused; give a path relative "
                                            "to the data root")
        if ".." in candidate.parts:
            raise PathOutsideDataRoot(text, "'..' segments are refused")
        resolved = (self.root / candidate).resolve()
        if resolved != self.root and self.root not in resolved.parents:
            raise PathOutsideDataRoot(text, "it resolves outside the data root (symlink)")
        if must_exist and not resolved.exists():
            raise FileNotFoundError(f"{text!r} does not exist under the data root")
        return resolved

    def relative(self, path: str | os.PathLike[str]) -> str:
        """Return ``path`` relative to the root, with forward slashes."""
        return Path(path).resolve().relative_to(self.root).as_posix()


def within(path: str | os.PathLike[str], folder: str | os.PathLike[str], *,
           resolve: bool = True) -> bool:
    """True when ``path`` is ``folder`` or lies inside it — after resolving symlinks in both,
    unless ``resolve`` is off (then the paths are only normalised)."""
    if resolve:
        inner, outer = Path(path).resolve(), Path(folder).resolve()
    else:
        inner = Path(os.path.normpath(os.path.abspath(path)))
        outer = Path(os.path.normpath(os.path.abspath(folder)))
    return inner == outer or outer in inner.parents


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb",
                 **open_kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it to ``path`` when the block succeeds.

    On an exception the temporary file is removed and ``path`` is left as it was. Parent folders
    are created. The data is flushed to disk before the rename.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=TEMP_SUFFIX,
                                    dir=target.parent)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def atomic_write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 1) -> None:
    """Write ``data`` as JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(data, indent=indent, ensure_ascii=False) + "\n")


def remove_partials(folder: str | os.PathLike[str]) -> int:
    """Delete the temporary files :func:`atomic_write` leaves when its process is killed.

    A stage calls this on its output folder before it starts; only one task works on a job's
    outputs at a time, so every ``.partial`` file found then is dead. Returns how many went.
    """
    removed = 0
    root = Path(folder)
    if not root.is_dir():
        return 0
    for path in root.rglob(f".*{TEMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed
