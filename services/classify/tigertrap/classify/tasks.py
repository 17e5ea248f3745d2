"""The Celery tasks of the classify stage (queue ``classify``), derived from its contract in
``tigertrap.core.stages`` (:mod:`tigertrap.classify.stage`), and of the stages that run on the
same queue: ``rde`` (repeat-detection elimination) and ``export`` (Camtrap DP). Paths are
confined as the contracts declare; images the MD file names outside the data root are
failures, never read; the result's paths are relative to the data root.
"""

from __future__ import annotations

from tigertrap.core.queue import stage_tasks

__all__ = ["TASKS"]

TASKS = {stage: stage_tasks(stage) for stage in ("classify", "rde", "export")}
