"""Worker liveness keys in a real Redis: written with a TTL, read back, removed, expired."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis
import redis.asyncio

from tests.conftest import wait_until
from tigertrap.core.config import ConfigError, load_settings
from tigertrap.core.workers import (
    WORKER_KEY,
    WORKERS_SET,
    Heartbeat,
    HeartbeatSettings,
    WorkerBeat,
    live_workers,
    worker_silence,
    workers_by_queue,
)


def _live(url: str) -> list[WorkerBeat]:
    async def read() -> list[WorkerBeat]:
        client = redis.asyncio.Redis.from_url(url, socket_timeout=2)
        try:
            return await live_workers(client)
        finally:
            await client.aclose()

    return asyncio.run(read())


def _beat(hostname: str, queues: list[str]) -> WorkerBeat:
    return WorkerBeat(hostname=hostname, queues=queues, pid=1, host="here", time=time.time())


def test_a_beating_worker_is_listed_with_its_queues_until_it_stops(redis_url: str):
    heart = Heartbeat(redis_url, _beat("snip.1@here", ["snip"]), period_s=0.2, ttl_s=30)
    heart.start()
    try:
        listed = wait_until(lambda: _live(redis_url), 10, "the first heartbeat")
        assert [(b.hostname, b.queues) for b in listed] == [("snip.1@here", ["snip"])]
    finally:
        heart.stop()
    assert _live(redis_url) == []  # deleted at once, not left to the 30 s TTL
    client = redis.Redis.from_url(redis_url)
    assert client.exists(WORKER_KEY.format("snip.1@here")) == 0
    assert client.smembers(WORKERS_SET) == set()


def test_the_key_of_a_worker_that_stops_beating_expires_after_the_ttl(redis_url: str):
    heart = Heartbeat(redis_url, _beat("detect.2@here", ["detect"]), period_s=0.2, ttl_s=0.6)
    heart.beat_once()  # one beat, as from a worker killed right after it
    assert [b.hostname for b in _live(redis_url)] == ["detect.2@here"]
    wait_until(lambda: not _live(redis_url), 10, "the heartbeat key to expire")
    assert redis.Redis.from_url(redis_url).smembers(WORKERS_SET) == set()  # pruned by the reader


def test_a_key_that_holds_no_heartbeat_is_skipped(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    client.set(WORKER_KEY.format("odd@here"), "not json")
    client.sadd(WORKERS_SET, "odd@here")
    assert _live(redis_url) == []


def test_workers_are_grouped_by_queue_with_every_stage_present():
    beats = [_beat("b@h", ["snip", "detect"]), _beat("a@h", ["detect"])]
    assert workers_by_queue(beats, ["detect", "snip", "train"]) == {
        "detect": ["a@h", "b@h"], "snip": ["b@h"], "train": []}


def test_a_ttl_not_longer_than_the_period_stops_loading_naming_both_keys(
        monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TIGERTRAP_HEARTBEAT_S", "5")
    monkeypatch.setenv("TIGERTRAP_HEARTBEAT_TTL_S", "5")
    with pytest.raises(ConfigError, match="TIGERTRAP_HEARTBEAT_TTL_S.*TIGERTRAP_HEARTBEAT_S"):
        load_settings(HeartbeatSettings)


def test_how_long_a_worker_has_been_silent_is_known_after_its_key_expired(redis_url: str):
    heart = Heartbeat(redis_url, _beat("detect.3@here", ["detect"]), period_s=0.2, ttl_s=0.3)
    heart.beat_once()  # its last beat
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    alive, silent = worker_silence(client, ["detect.3@here"])["detect.3@here"]
    assert alive is True and silent is not None and silent < 5
    wait_until(lambda: not client.exists(WORKER_KEY.format("detect.3@here")), 10,
               "the heartbeat key to expire")
    alive, later = worker_silence(client, ["detect.3@here"])["detect.3@here"]
    assert alive is False and later is not None and later >= 0.3 > silent
    assert worker_silence(client, ["never.1@here"]) == {"never.1@here": (False, None)}
