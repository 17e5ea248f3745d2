"""The Celery task of the download stage (queue ``download``), derived from its contract in
``tigertrap.core.stages`` (:mod:`tigertrap.download.stage`). Paths are relative to the data
root and confined as the contract declares (``DATASET_NAME`` is one folder name under
``datasets/``).
"""

from __future__ import annotations

from tigertrap.core.queue import stage_tasks

__all__ = ["TASKS"]

TASKS = stage_tasks("download")
