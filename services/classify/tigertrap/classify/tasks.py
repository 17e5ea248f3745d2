"""The Celery task of the classify stage (queue ``classify``): a thin adapter over
:func:`tigertrap.classify.batch.classify_md`.

``params`` are the stage's setting keys (``MD_FILE``, ``MODEL``, ``OUTPUT_DIR``,
``LOWER_CONF``, ``SEQUENCE_FILE``, ...); paths are confined as :mod:`tigertrap.core.contract`
declares (output file names relative to ``OUTPUT_DIR`` or the MD file's folder), images the MD
file names outside the data root are failures, never read; the result's paths are relative to
the data root.
"""

from __future__ import annotations

from typing import Any

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.contract import job_settings
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import ProgressFn, stage_task

__all__ = ["classify"]

#: Result keys holding output paths, reported relative to the data root.
RESULT_PATHS = ("md_file", "predictions_csv", "images_csv", "long_csv")


def _settings(params: dict[str, Any], root: DataRoot) -> Any:
    from tigertrap.classify.config import ClassifySettings

    return job_settings("classify", ClassifySettings, params, root)


@stage_task("classify")
def classify(params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """Classify a job's MD file; returns the output files and counts."""
    from tigertrap.classify.batch import classify_md

    root = DataRoot(load_settings(CoreSettings).tigertrap_data)
    result = classify_md(_settings(params, root), progress=progress,
                         image_root=root.root).as_dict()
    for key in RESULT_PATHS:
        if result.get(key):
            result[key] = root.relative(result[key])
    return result
