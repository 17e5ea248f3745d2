"""The Celery task of the classify stage (queue ``classify``): a thin adapter over
:func:`tigertrap.classify.batch.classify_md`.

``params`` are the stage's setting keys (``MD_FILE``, ``MODEL``, ``OUTPUT_DIR``,
``LOWER_CONF``, ``SEQUENCE_FILE``, ...); every path is relative to the data root, and so are the
result's paths.
"""

from __future__ import annotations

from typing import Any

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import ProgressFn, stage_task

__all__ = ["PATH_KEYS", "classify"]

#: Setting keys that name a path under the data root.
PATH_KEYS = ("md_file", "model", "output_dir", "sequence_file")
#: Result keys holding output paths, reported relative to the data root.
RESULT_PATHS = ("md_file", "predictions_csv", "images_csv", "long_csv")


def _settings(params: dict[str, Any], root: DataRoot) -> Any:
    from tigertrap.classify.config import ClassifySettings

    given = {str(key).lower(): value for key, value in params.items()}
    for key in PATH_KEYS:
        if given.get(key) not in (None, ""):
            given[key] = root.resolve(given[key])
    return load_settings(ClassifySettings, **given)


@stage_task("classify")
def classify(params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """Classify a job's MD file; returns the output files and counts."""
    from tigertrap.classify.batch import classify_md

    root = DataRoot(load_settings(CoreSettings).tigertrap_data)
    result = classify_md(_settings(params, root), progress=progress).as_dict()
    for key in RESULT_PATHS:
        if result.get(key):
            result[key] = root.relative(result[key])
    return result
