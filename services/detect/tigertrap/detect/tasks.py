"""The Celery task of the detect stage (queue ``detect``): a thin adapter over
:func:`tigertrap.detect.batch.run_detect`.

``params`` are the stage's setting keys (``INPUT_DIR`` or ``IMAGE_LIST``, ``MD_FILE``,
``MD_MODEL``, ``THRESHOLD``, ...); every path is relative to the data root, and so is the
result's ``md_file``.
"""

from __future__ import annotations

import os
from typing import Any

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import ProgressFn, stage_task

__all__ = ["detect"]

#: Setting keys that name a path under the data root.
PATH_KEYS = ("input_dir", "image_list", "models_dir")


def _settings(params: dict[str, Any], root: DataRoot) -> Any:
    from tigertrap.detect.batch import output_path
    from tigertrap.detect.config import DetectSettings
    from tigertrap.detect.weights import is_weights_file

    given = {str(key).lower(): value for key, value in params.items()}
    for key in PATH_KEYS:
        if given.get(key) not in (None, ""):
            given[key] = root.resolve(given[key])
    if given.get("md_model") and is_weights_file(str(given["md_model"])):
        given["md_model"] = str(root.resolve(given["md_model"]))
    settings = load_settings(DetectSettings, **given)
    # MD_FILE may climb out of the input folder (``../md.json``) but not out of the root.
    root.resolve(os.path.relpath(output_path(settings), root.root))
    return settings


@stage_task("detect")
def detect(params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """Run MegaDetector for a job; returns the output file and counts."""
    from tigertrap.detect.batch import run_detect

    root = DataRoot(load_settings(CoreSettings).tigertrap_data)
    summary = run_detect(_settings(params, root), progress=progress)
    result = summary.model_dump(mode="json")
    result["md_file"] = root.relative(summary.md_file)
    return result
