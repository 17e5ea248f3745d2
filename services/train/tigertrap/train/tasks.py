"""The Celery tasks of the train and retrain stages (queue ``train``), derived from their
contracts in ``tigertrap.core.stages`` (:mod:`tigertrap.train.stage`): every path confined
under the data root; the results' ``run_dir`` and ``bundle_dir`` (train's default
``models/classifiers/<SAVEFILE>``) are relative to it.
"""

from __future__ import annotations

from tigertrap.core.queue import stage_tasks

__all__ = ["TASKS"]

TASKS = {stage: stage_tasks(stage) for stage in ("train", "retrain")}
