"""The Celery task of the detect stage (queue ``detect``): a thin adapter over
:func:`tigertrap.detect.batch.run_detect`.

``params`` are the stage's setting keys (``INPUT_DIR`` or ``IMAGE_LIST``, ``MD_FILE``,
``MD_MODEL``, ``THRESHOLD``, ...); paths are confined as :mod:`tigertrap.core.contract`
declares (relative to the data root, ``MD_FILE`` to the input folder, ``CHECKPOINT_FILE`` to
the MD file's folder), images found through symlinks or lists outside the data root are
failures, never read; the result's ``md_file`` is relative to the data root.
"""

from __future__ import annotations

from typing import Any

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.contract import job_settings
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import ProgressFn, stage_task

__all__ = ["detect"]

def _settings(params: dict[str, Any], root: DataRoot) -> Any:
    from tigertrap.detect.config import DetectSettings

    return job_settings("detect", DetectSettings, params, root)


@stage_task("detect")
def detect(params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """Run MegaDetector for a job; returns the output file and counts."""
    from tigertrap.detect.batch import run_detect

    root = DataRoot(load_settings(CoreSettings).tigertrap_data)
    summary = run_detect(_settings(params, root), progress=progress, image_root=root.root)
    result = summary.model_dump(mode="json")
    result["md_file"] = root.relative(summary.md_file)
    return result
