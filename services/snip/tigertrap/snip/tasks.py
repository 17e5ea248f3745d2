"""The Celery tasks of the snip stage (queue ``snip``), derived from its contract in
``tigertrap.core.stages``: the stage, or its shards and their merge
(:mod:`tigertrap.snip.stage`). ``INPUT_DIR`` and ``MANIFEST`` are relative to the data root,
``MD_FILE`` and ``SNIP_DIR`` to ``INPUT_DIR``; none may leave the data root. The result's
paths are relative to the data root.
"""

from __future__ import annotations

from tigertrap.core.queue import stage_tasks

__all__ = ["TASKS"]

TASKS = stage_tasks("snip")
