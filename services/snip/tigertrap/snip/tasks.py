"""The Celery task of the snip stage (queue ``snip``): a thin adapter over :func:`run_snip`.

``params`` are the stage's setting keys (``INPUT_DIR``, ``MD_FILE``, ``SNIP_SIZE``, ...);
``INPUT_DIR`` and ``MANIFEST`` are relative to the data root, ``MD_FILE`` and ``SNIP_DIR`` to
``INPUT_DIR``; none may leave the data root. The result's paths are relative to the data root.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import ProgressFn, stage_task

if TYPE_CHECKING:
    from tigertrap.snip.config import SnipSettings

__all__ = ["job_settings", "snip"]

#: Settings holding paths relative to the data root.
ROOT_PATH_KEYS = ("input_dir", "manifest")


def job_settings(params: dict[str, Any], root: DataRoot) -> SnipSettings:
    """The stage's settings for a job's ``params``, every path resolved under ``root``.

    Raises:
        PathOutsideDataRoot: a path (given, or made from INPUT_DIR with MD_FILE or SNIP_DIR)
            leaves the data root.
        ConfigError: a value of the wrong type.
    """
    from tigertrap.snip.config import SnipSettings

    given = {str(key).lower(): value for key, value in params.items()}
    for key in ROOT_PATH_KEYS:
        if given.get(key) not in (None, ""):
            given[key] = root.resolve(given[key])
    given.setdefault("input_dir", root.root)
    settings = load_settings(SnipSettings, **given)
    for output in (settings.md_path, settings.snips_path):
        root.resolve(os.path.relpath(output, root.root))
    return settings


@stage_task("snip")
def snip(params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """Snip a job's MD file; returns counts and data-root-relative output paths."""
    from tigertrap.snip.snip import run_snip

    root = DataRoot(load_settings(CoreSettings).tigertrap_data)
    summary = run_snip(job_settings(params, root), progress=progress, image_root=root.root)
    result = summary.as_dict()
    result["snips_dir"] = root.relative(summary.snips_dir)
    result["snips_csv"] = root.relative(summary.snips_csv)
    return result
