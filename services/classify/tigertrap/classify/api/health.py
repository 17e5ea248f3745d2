"""What ``GET /health`` answers from: a snapshot of Redis and the live workers, kept current.

:class:`HealthMonitor` runs as an asyncio task in the app's lifespan. Every
``HEALTH_REFRESH_S`` it reads the workers' heartbeat keys (:mod:`tigertrap.core.workers`) with
an async Redis client whose socket timeouts are ``HEALTH_TIMEOUT_S``, and replaces the snapshot.
The route only reads the snapshot: no Redis call, no broker connection, no threadpool, so a
``/health`` call costs microseconds of the event loop and any number of callers cannot block the
other routes, only share the CPU with them (issue 12: ``control.inspect()`` in a sync route took
every threadpool thread and the whole API down).

The answer is truthful: ``ok`` only when Redis answered and every stage has a live worker;
otherwise ``degraded`` with a sentence per problem. A snapshot older than a few refreshes (the
refresher stalled) is itself a problem.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import redis
import redis.asyncio

from tigertrap.classify.api.schemas import HealthResponse
from tigertrap.core.config import redis_py_url
from tigertrap.core.queue import DEFAULT_REDIS_URL, STAGES
from tigertrap.core.workers import live_workers, workers_by_queue

__all__ = ["HealthMonitor", "HealthSnapshot"]

log = logging.getLogger(__name__)

#: A snapshot older than this many refresh periods (plus the timeouts) is stale.
STALE_AFTER_REFRESHES = 3


@dataclass(frozen=True)
class HealthSnapshot:
    """Redis and the workers as last seen; ``taken`` is ``time.monotonic()`` then."""

    redis: bool
    workers: dict[str, list[str]]
    taken: float
    error: str | None = None

    def stages_without_workers(self) -> list[str]:
        """The stages no live worker consumes, in pipeline order."""
        return [stage for stage in STAGES if not self.workers.get(stage)]


class HealthMonitor:
    """Keeps a :class:`HealthSnapshot` current from a background task (see module docstring)."""

    def __init__(self, url: str | None, refresh_s: float, timeout_s: float) -> None:
        self.url = url or DEFAULT_REDIS_URL
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        #: Every Redis call of a refresh, retries included, ends within this.
        self.deadline_s = 4 * timeout_s
        self.max_age_s = STALE_AFTER_REFRESHES * refresh_s + self.deadline_s
        self.snapshot: HealthSnapshot | None = None
        self._client: redis.asyncio.Redis | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take the first snapshot (so the first answer is already true), then keep it current."""
        self._client = redis.asyncio.Redis.from_url(  # redis+socket:// spelled for redis-py
            redis_py_url(self.url), socket_timeout=self.timeout_s,
            socket_connect_timeout=self.timeout_s)
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="tigertrap-health")

    async def stop(self) -> None:
        """Stop refreshing and close the Redis client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def refresh(self) -> HealthSnapshot:
        """Read the live workers once and replace the snapshot (Redis down: ``redis=False``)."""
        assert self._client is not None, "start() creates the client"
        try:
            beats = await asyncio.wait_for(live_workers(self._client), self.deadline_s)
            snapshot = HealthSnapshot(redis=True, workers=workers_by_queue(beats, STAGES),
                                      taken=time.monotonic())
        except (redis.RedisError, OSError, TimeoutError) as error:
            snapshot = HealthSnapshot(redis=False, workers=workers_by_queue([], STAGES),
                                      taken=time.monotonic(),
                                      error=f"{type(error).__name__}: {error}")
        self.snapshot = snapshot
        return snapshot

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except Exception:  # a bug must not stop the refreshing; the age shows it
                log.exception("health refresh failed")

    def report(self, model: str | None) -> HealthResponse:
        """The ``/health`` answer from the current snapshot (computed, never fetched)."""
        snapshot = self.snapshot
        if snapshot is None:
            return HealthResponse(status="degraded", redis=False,
                                  workers=workers_by_queue([], STAGES), model=model,
                                  stages_without_workers=list(STAGES), snapshot_age_s=None,
                                  problems=["no health snapshot yet (the server is starting)"])
        age = time.monotonic() - snapshot.taken
        missing = snapshot.stages_without_workers()
        problems = []
        if not snapshot.redis:
            problems.append(f"Redis at the job queue is unreachable ({snapshot.error})")
        elif missing:
            problems.append(f"no live worker for stage(s) {', '.join(missing)}")
        if age > self.max_age_s:
            problems.append(f"the health snapshot is {age:.1f} s old (refreshed every "
                            f"{self.refresh_s:g} s): its refresher has stalled")
        return HealthResponse(status="degraded" if problems else "ok", redis=snapshot.redis,
                              workers=snapshot.workers, model=model,
                              stages_without_workers=missing, snapshot_age_s=round(age, 3),
                              problems=problems)
