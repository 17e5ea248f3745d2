"""The Celery task of the download stage (queue ``download``): a thin adapter.

Parameters are the stage's setting keys (``METADATA``, ``CVWC_SOURCE``, ``DATASET_NAME``,
``SEED``, ...); paths are relative to the data root and confined as
:mod:`tigertrap.core.contract` declares (``DATASET_NAME`` is one folder name under
``datasets/``). Runs the LILA part when ``METADATA`` is
given and the CVWC import when ``CVWC_SOURCE`` is given.
"""

from __future__ import annotations

from typing import Any

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.contract import job_settings
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import ProgressFn, stage_task

__all__ = ["download"]

@stage_task("download")
def download(params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """Sample, split and download LILA BC images and/or import CVWC2019 tigers."""
    from tigertrap.download.config import DownloadSettings
    from tigertrap.download.cvwc import download_cvwc
    from tigertrap.download.lila import download_lila

    data_root = load_settings(CoreSettings).tigertrap_data
    settings = job_settings("download", DownloadSettings, params, DataRoot(data_root))
    if not settings.metadata and not settings.cvwc_source:
        raise ValueError("give METADATA (LILA metadata file) and/or CVWC_SOURCE")
    result: dict[str, Any] = {}
    if settings.metadata:
        result["lila"] = download_lila(settings, data_root, progress)
    if settings.cvwc_source:
        result["cvwc"] = download_cvwc(settings, data_root, progress)
    return result
