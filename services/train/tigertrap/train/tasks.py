"""The Celery task of the train stage (queue ``train``), derived from its contract in
``tigertrap.core.stages`` (:mod:`tigertrap.train.stage`): every path confined under the data
root; the result's ``run_dir`` and ``bundle_dir`` (default ``models/classifiers/<SAVEFILE>``)
are relative to it.
"""

from __future__ import annotations

from tigertrap.core.queue import stage_tasks

__all__ = ["TASKS"]

TASKS = stage_tasks("train")
