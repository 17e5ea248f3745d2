"""The Celery task of the snip stage (queue ``snip``): a thin adapter over :func:`run_snip`.

``params`` are the stage's setting keys (``INPUT_DIR``, ``MD_FILE``, ``SNIP_SIZE``, ...);
``INPUT_DIR`` and ``MANIFEST`` are relative to the data root, ``MD_FILE`` and ``SNIP_DIR`` to
``INPUT_DIR``; none may leave the data root. The result's paths are relative to the data root.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.contract import job_settings as confined_settings
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import ProgressFn, stage_task

if TYPE_CHECKING:
    from tigertrap.snip.config import SnipSettings

__all__ = ["job_settings", "snip"]

def job_settings(params: dict[str, Any], root: DataRoot) -> SnipSettings:
    """The stage's settings for a job's ``params``, every path confined under ``root``.

    Raises:
        PathRefused: a path (given, or a default such as ``md.json`` or ``snips`` in
            INPUT_DIR) leaves the data root.
        ConfigError: a value of the wrong type.
    """
    from tigertrap.snip.config import SnipSettings

    return confined_settings("snip", SnipSettings, params, root)


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
