"""The Celery tasks of the detect stage (queue ``detect``), derived from its contract in
``tigertrap.core.stages``: the stage over a folder, list or manifest, or its shards and their
merge (:mod:`tigertrap.detect.stage`). Paths are confined as the contract declares; images
outside the data root are failures, never read; the result's ``md_file`` is relative to the
data root.
"""

from __future__ import annotations

from tigertrap.core.queue import stage_tasks

__all__ = ["TASKS"]

TASKS = stage_tasks("detect")
