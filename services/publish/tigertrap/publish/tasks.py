"""The Celery task of the publish stage (queue ``publish``), derived from its contract in
``tigertrap.core.stages`` (:mod:`tigertrap.publish.stage`)."""

from __future__ import annotations

from tigertrap.core.queue import stage_tasks

__all__ = ["TASKS"]

TASKS = stage_tasks("publish")
