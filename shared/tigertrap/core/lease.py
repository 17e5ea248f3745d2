"""Task leases: a running task keeps its broker message from being handed to another worker.

How Celery on Redis redelivers (kombu's Redis transport, ``kombu/transport/redis.py``): a
worker that takes a message from a queue records it in two keys before running it — the hash
``unacked`` (delivery tag -> the message) and the sorted set ``unacked_index`` (delivery tag ->
the time it was taken, the taking worker's ``time()``). Acknowledging the message (tasks are
acknowledged late: after they return) deletes both entries. Every worker, whatever queues it
consumes, sweeps ``unacked_index`` every few seconds and puts back on its queue every message
whose score is older than *its* ``visibility_timeout``. That is how a task whose worker
vanished (SIGKILL of the whole worker, a host that froze or lost power) is redone elsewhere.

The timeout is transport-wide, so it must be short for a lost shard to be redone soon, and
then any task running longer than it — a train stage runs for hours — would be put back while
still running. :func:`task_lease` closes that gap: while a task runs, a thread in the process
running it re-scores its own delivery tag to "now" every :func:`renew_period` (a fifth of the
timeout, at most a minute). Only a message whose worker stopped renewing — its process dead or
frozen — ever gets older than the timeout. ``ZADD XX`` only updates an entry that still
exists, so a renewal never resurrects a message already acknowledged or put back.

Scores are the workers' own clocks, as kombu writes them: hosts' clocks must agree to well
within the timeout (NTP does; skew of seconds against a timeout of minutes does not matter).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis
from celery import Task

from tigertrap.core.config import redis_py_url

__all__ = ["UNACKED_INDEX_KEY", "Lease", "delivery_tag", "renew_period", "task_lease"]

log = logging.getLogger(__name__)

#: kombu's default name of the sorted set of unacknowledged delivery tags (Channel.
#: unacked_index_key), prefixed by the transport's ``global_keyprefix`` when one is set.
UNACKED_INDEX_KEY = "unacked_index"
#: Longest pause between two renewals, whatever the timeout.
MAX_RENEW_S = 60.0
REDIS_TIMEOUT_S = 5.0


def renew_period(visibility_timeout: float) -> float:
    """Seconds between two renewals of a lease: a fifth of the timeout, at most a minute."""
    return max(0.05, min(visibility_timeout / 5, MAX_RENEW_S))


def delivery_tag(task: Task) -> str | None:
    """The broker's delivery tag of the message ``task`` is running from (None when it runs
    eagerly, outside a worker). kombu passes it in the message properties; Celery hands the
    properties to the task's request, also in a prefork pool's child."""
    properties = getattr(task.request, "properties", None) or {}
    tag = properties.get("delivery_tag")
    return str(tag) if tag else None


class Lease:
    """A thread that re-scores one delivery tag in ``key`` every ``period_s`` until stopped."""

    def __init__(self, url: str, key: str, tag: str, period_s: float) -> None:
        self.client = redis.Redis.from_url(redis_py_url(url), socket_timeout=REDIS_TIMEOUT_S,
                                           socket_connect_timeout=REDIS_TIMEOUT_S)
        self.key, self.tag, self.period_s = key, tag, period_s
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tigertrap-lease", daemon=True)

    def renew(self) -> bool:
        """Score the tag "now"; False when its entry is gone (acknowledged or put back)."""
        return bool(self.client.zadd(self.key, {self.tag: time.time()}, xx=True, ch=True))

    def _run(self) -> None:
        while not self.stopped.wait(self.period_s):
            try:
                self.renew()
            except redis.RedisError as error:  # the broker is down: nothing is swept either
                log.warning("lease of %s not renewed (%s); retrying", self.tag, error)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=self.period_s + 2 * REDIS_TIMEOUT_S)
        self.client.close()


@contextlib.contextmanager
def task_lease(task: Task) -> Iterator[None]:
    """Keep ``task``'s message leased to this process while the block runs (see module
    docstring); a no-op for a task not delivered by a Redis broker."""
    tag = delivery_tag(task)
    conf: Any = task.app.conf
    url = str(conf.broker_url or "")
    if tag is None or not url.startswith(("redis", "socket", "unix")):
        yield
        return
    options = conf.broker_transport_options or {}
    key = options.get("global_keyprefix", "") + options.get("unacked_index_key",
                                                            UNACKED_INDEX_KEY)
    renewer = Lease(url, key, tag, renew_period(float(options.get("visibility_timeout",
                                                                      3600))))
    renewer.start()
    try:
        yield
    finally:
        renewer.stop()
