"""The Celery task of the train stage (queue ``train``): a thin adapter over
:func:`tigertrap.train.training.train`.

``params`` are the stage's setting keys (``DATA_DIR`` or ``SNIPS_CSV``, ``CLASS_MAP``,
``MODEL``, ``RECIPE``, ...); every path is relative to the data root, and so are the result's
``run_dir`` and ``bundle_dir`` (default ``models/classifiers/<SAVEFILE>``).
"""

from __future__ import annotations

from typing import Any

from tigertrap.core.config import CoreSettings, load_settings
from tigertrap.core.contract import job_settings as confined_settings
from tigertrap.core.paths import DataRoot
from tigertrap.core.queue import ProgressFn, stage_task

__all__ = ["job_settings", "train"]


def job_settings(params: dict[str, Any], root: DataRoot) -> Any:
    """The job's :class:`~tigertrap.train.config.TrainSettings`, every path confined under
    ``root`` as :mod:`tigertrap.core.contract` declares, BUNDLE_PATH defaulting to
    ``models/classifiers/<SAVEFILE>``."""
    from tigertrap.train.config import CLASSIFIERS_DIR, TrainSettings

    settings = confined_settings("train", TrainSettings, params, root)
    if settings.bundle_path is None:
        settings = settings.model_copy(
            update={"bundle_path": root.root / CLASSIFIERS_DIR / settings.savefile})
    return settings


@stage_task("train")
def train(params: dict[str, Any], progress: ProgressFn) -> dict[str, Any]:
    """Train, evaluate and export a classifier for a job; resumes a redelivered job."""
    from tigertrap.train.training import train as run_training

    root = DataRoot(load_settings(CoreSettings).tigertrap_data)
    result = run_training(job_settings(params, root), progress=progress, image_root=root.root)
    return {"run_dir": root.relative(result.run_dir),
            "bundle_dir": root.relative(result.bundle_dir),
            "epochs": result.epochs, "metrics": result.metrics}
