"""The download stage as the job system runs it (see ``tigertrap.core.stages``): the LILA part
when ``METADATA`` is given, the CVWC import when ``CVWC_SOURCE`` is given."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tigertrap.core.queue import ProgressFn
from tigertrap.download.config import DownloadSettings

__all__ = ["run"]


def run(settings: DownloadSettings, progress: ProgressFn, image_root: Path) -> dict[str, Any]:
    """Sample, split and download LILA BC images and/or import CVWC2019 tigers into
    ``datasets/<DATASET_NAME>/``; result paths are relative to the data root."""
    from tigertrap.download.cvwc import download_cvwc
    from tigertrap.download.lila import download_lila

    if not settings.metadata and not settings.cvwc_source:
        raise ValueError("give METADATA (LILA metadata file) and/or CVWC_SOURCE")
    result: dict[str, Any] = {}
    if settings.metadata:
        result["lila"] = download_lila(settings, image_root, progress)
    if settings.cvwc_source:
        result["cvwc"] = download_cvwc(settings, image_root, progress)
    return result
