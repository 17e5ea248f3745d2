"""The Celery task of the snip stage (queue ``snip``): a thin adapter over :func:`run_snip`.

``params`` are the stage's setting keys (``INPUT_DIR``, ``MD_FILE``, ``SNIP_SIZE``, ...);
``INPUT_DIR`` and ``MANIFEST`` are relative to the data root, and so are the result's paths.
"""

from __future__ import annotations

import os
from typing import Any

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import ProgressFn, stage_task

__all__ = ["snip"]

PATH_KEYS = ("input_dir", "manifest")


@stage_task("snip")
def snip(params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """Snip a job's MD file; returns counts and data-root-relative output paths."""
    from tigertrap.snip.config import SnipSettings
    from tigertrap.snip.snip import run_snip

    root = DataRoot(load_settings(CoreSettings).tigertrap_data)
    given = {str(key).lower(): value for key, value in params.items()}
    for key in PATH_KEYS:
        if given.get(key) not in (None, ""):
            given[key] = root.resolve(given[key])
    settings = load_settings(SnipSettings, **given)
    for output in (settings.md_path, settings.snips_path):  # no escape through MD_FILE/SNIP_DIR
        root.resolve(os.path.relpath(output, root.root))
    summary = run_snip(settings, progress=progress)
    result = summary.as_dict()
    result["snips_dir"] = root.relative(summary.snips_dir)
    result["snips_csv"] = root.relative(summary.snips_csv)
    return result
