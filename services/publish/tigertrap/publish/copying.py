"""Copying bundle files into a published folder without ever leaving half a file behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

__all__ = ["atomic_copy"]


def atomic_copy(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy ``source`` to ``target`` through a temporary name in the target's folder."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    shutil.copyfile(source, partial)
    partial.replace(target)
    return target
