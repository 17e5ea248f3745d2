"""Worker liveness: every Celery worker keeps a heartbeat key in Redis; anyone can list them.

A worker's main process writes ``tigertrap:worker:<hostname>`` (JSON: hostname, queues, pid,
host, time) with a time-to-live of ``TIGERTRAP_HEARTBEAT_TTL_S`` every ``TIGERTRAP_HEARTBEAT_S``
seconds from a thread (:class:`Heartbeat`, started by the consumer bootstep
:class:`HeartbeatStep` that :func:`tigertrap.core.queue.make_celery` installs), and adds its
hostname to the set ``tigertrap:workers``. A clean shutdown deletes the key at once; a worker
that dies stops refreshing it and Redis expires it after the TTL. Expiry runs on Redis's clock,
so the writers' and readers' clocks do not matter. :func:`live_workers` reads the set and the
keys in two short round trips (no broadcast, no waiting for replies).

Each beat also records its time, on Redis's clock (``TIME`` inside the beat's script), in the
hash ``tigertrap:workers:seen`` (hostname -> seconds since the epoch), which outlives the
worker: :func:`worker_silence` says how long any worker, dead or alive, has been silent, so a
job record can show that the worker holding a shard died two minutes ago.

Why keys and not Celery's own ``worker-heartbeat`` events: those are pub/sub messages, so a
reader knows only the workers it has heard since it subscribed (each API process would start
blind for a heartbeat period), it needs a long-lived kombu consumer with its own reconnection
logic, and the events do not say which queues a worker consumes. A key with a TTL *is* the
state: any process (each API worker, the CLI) reads it at any time with one non-blocking Redis
call, and Redis does the expiring. ``control.inspect()`` is not used: it broadcasts and waits
for replies through a kombu pool connection, which hung the whole API (issue 12).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio
from celery import bootsteps
from pydantic import BaseModel, Field, model_validator

from tigertrap.core.config import StageSettings, load_settings, redis_py_url

__all__ = [
    "WORKERS_SEEN",
    "WORKERS_SET",
    "WORKER_KEY",
    "Heartbeat",
    "HeartbeatSettings",
    "HeartbeatStep",
    "WorkerBeat",
    "live_workers",
    "worker_silence",
    "workers_by_queue",
]

log = logging.getLogger(__name__)

WORKER_KEY = "tigertrap:worker:{}"
WORKERS_SET = "tigertrap:workers"
#: hostname -> time of the worker's last beat, on Redis's clock (kept after the worker dies).
WORKERS_SEEN = "tigertrap:workers:seen"
#: One beat, atomically: the key with its TTL, the set entry, and the beat's time on Redis's
#: clock (so silence is measured on one clock, whatever the hosts' clocks say).
_BEAT_SCRIPT = """
local now = redis.call('TIME')
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], now[1] .. '.' .. string.format('%06d', now[2]))
return 1
"""
#: Socket timeouts of the heartbeat's Redis client: a hung Redis delays a beat, never the worker.
REDIS_TIMEOUT_S = 5.0


class HeartbeatSettings(StageSettings):
    """How often a worker beats and how long a beat stays valid (environment keys)."""

    tigertrap_heartbeat_s: float = Field(default=5.0, gt=0,
                                         description="seconds between a worker's heartbeats")
    tigertrap_heartbeat_ttl_s: float = Field(
        default=15.0, gt=0, description="a worker missing its heartbeats this long is dead")

    @model_validator(mode="after")
    def _ttl_covers_a_period(self) -> HeartbeatSettings:
        if self.tigertrap_heartbeat_ttl_s <= self.tigertrap_heartbeat_s:
            raise ValueError(
                f"TIGERTRAP_HEARTBEAT_TTL_S ({self.tigertrap_heartbeat_ttl_s:g}) must be longer "
                f"than TIGERTRAP_HEARTBEAT_S ({self.tigertrap_heartbeat_s:g}); a few periods")
        return self


class WorkerBeat(BaseModel):
    """What a worker says about itself in each heartbeat."""

    hostname: str = Field(description="Celery's node name, e.g. detect.1234@host")
    queues: list[str]
    pid: int
    host: str
    time: float = Field(description="the worker's clock at the beat (seconds since the epoch)")


class Heartbeat:
    """A thread that keeps one worker's key alive in Redis until :meth:`stop`."""

    def __init__(self, url: str, beat: WorkerBeat, period_s: float, ttl_s: float) -> None:
        self.client = redis.Redis.from_url(redis_py_url(url), socket_timeout=REDIS_TIMEOUT_S,
                                           socket_connect_timeout=REDIS_TIMEOUT_S)
        self.beat = beat
        self.key = WORKER_KEY.format(beat.hostname)
        self.period_s = period_s
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tigertrap-heartbeat",
                                        daemon=True)
        self._failing = False

    def start(self) -> None:
        """Write the first beat now, then one every period."""
        self._thread.start()

    def beat_once(self) -> None:
        """Write the key (with its TTL), the set entry and the time seen, atomically."""
        record = self.beat.model_copy(update={"time": time.time()}).model_dump_json()
        self.client.eval(_BEAT_SCRIPT, 3, self.key, WORKERS_SET, WORKERS_SEEN, record,
                         self.ttl_ms, self.beat.hostname)

    def _run(self) -> None:
        while True:
            try:
                self.beat_once()
                if self._failing:
                    log.info("heartbeat of %s written again", self.beat.hostname)
                self._failing = False
            except redis.RedisError as error:
                if not self._failing:  # once per outage, not every period
                    log.warning("heartbeat of %s not written (%s); retrying every %g s",
                                self.beat.hostname, error, self.period_s)
                self._failing = True
            if self._stopped.wait(self.period_s):
                return

    def stop(self) -> None:
        """Stop beating and delete the key, so the worker is gone at once, not after the TTL."""
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.period_s + 2 * REDIS_TIMEOUT_S)
        try:
            with self.client.pipeline(transaction=True) as pipe:
                pipe.delete(self.key)
                pipe.srem(WORKERS_SET, self.beat.hostname)
                pipe.execute()
        except redis.RedisError as error:  # the key expires by itself
            log.warning("heartbeat key of %s not deleted (%s)", self.beat.hostname, error)
        finally:
            self.client.close()


class HeartbeatStep(bootsteps.StartStopStep):
    """Consumer bootstep: a :class:`Heartbeat` while the worker consumes its queues.

    It starts once the task consumer exists (its queues are known) and stops when the consumer
    stops: on shutdown, and while the broker connection is lost (the worker is then not
    consuming, and Redis is the broker).
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.heart: Heartbeat | None = None

    def start(self, parent: Any) -> None:
        settings = load_settings(HeartbeatSettings)
        queues = sorted(queue.name for queue in parent.task_consumer.queues)
        beat = WorkerBeat(hostname=parent.hostname, queues=queues, pid=os.getpid(),
                          host=socket.gethostname(), time=time.time())
        self.heart = Heartbeat(parent.app.conf.broker_url, beat,
                               settings.tigertrap_heartbeat_s, settings.tigertrap_heartbeat_ttl_s)
        self.heart.start()

    def stop(self, parent: Any) -> None:
        heart, self.heart = self.heart, None
        if heart is not None:
            heart.stop()

    shutdown = stop


async def live_workers(client: redis.asyncio.Redis) -> list[WorkerBeat]:
    """The workers whose heartbeat has not expired, by hostname.

    Set entries whose key has expired are removed (a worker that beats again re-adds itself);
    a key that does not hold a heartbeat is skipped.
    Raises ``redis.RedisError`` when Redis cannot be reached within the client's timeouts.
    """
    names = sorted(_text(name) for name in await client.smembers(WORKERS_SET))
    if not names:
        return []
    records = await client.mget([WORKER_KEY.format(name) for name in names])
    beats, expired = [], []
    for name, record in zip(names, records, strict=True):
        if record is None:
            expired.append(name)
            continue
        try:
            beats.append(WorkerBeat.model_validate(json.loads(record)))
        except ValueError as error:  # written by something else: not a worker we can count
            log.warning("ignoring heartbeat key of %s: %s", name, error)
    if expired:
        await client.srem(WORKERS_SET, *expired)
    return beats


def worker_silence(client: redis.Redis, hostnames: Iterable[str]
                   ) -> dict[str, tuple[bool, float | None]]:
    """For each of ``hostnames``: whether its heartbeat is live, and seconds since its last
    beat on Redis's clock (None when it never beat). One round trip.

    Raises ``redis.RedisError`` when Redis cannot be reached within the client's timeouts.
    """
    names = sorted(set(hostnames))
    if not names:
        return {}
    with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.hmget(WORKERS_SEEN, names)
        for name in names:
            pipe.exists(WORKER_KEY.format(name))
        (seconds, micros), seen, *alive = pipe.execute()
    now = seconds + micros / 1e6
    return {name: (bool(live), None if last is None else max(0.0, now - float(last)))
            for name, last, live in zip(names, seen, alive, strict=True)}


def workers_by_queue(beats: Iterable[WorkerBeat], queues: Iterable[str]) -> dict[str, list[str]]:
    """``queue -> hostnames`` consuming it; every name in ``queues`` is present (maybe empty)."""
    by_queue: dict[str, list[str]] = {queue: [] for queue in queues}
    for beat in sorted(beats, key=lambda b: b.hostname):
        for queue in beat.queues:
            by_queue.setdefault(queue, []).append(beat.hostname)
    return by_queue


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

