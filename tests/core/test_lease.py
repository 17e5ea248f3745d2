"""Task leases on a real Redis: a running task keeps its ``unacked_index`` score fresh, never
re-adds an entry that is gone, and stops renewing when it ends; plus the settings around it."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import redis

from tests.conftest import wait_until
from tigertrap.core.config import CoreSettings, load_settings, redis_py_url
from tigertrap.core.lease import UNACKED_INDEX_KEY, Lease, renew_period, task_lease
from tigertrap.core.queue import make_celery, restore_interval


def _task(url: str, tag: str | None, visibility_s: int) -> SimpleNamespace:
    """What ``task_lease`` reads of a bound Celery task: its app's broker settings and the
    delivery tag kombu put in the message properties."""
    app = make_celery(url)
    app.conf.broker_transport_options = {**app.conf.broker_transport_options,
                                         "visibility_timeout": visibility_s}
    properties = {"delivery_tag": tag} if tag else {}
    return SimpleNamespace(app=app, request=SimpleNamespace(properties=properties))


def test_a_running_task_keeps_its_unacked_score_fresh_and_stops_when_it_ends(redis_url):
    client = redis.Redis.from_url(redis_url)
    taken = time.time() - 100  # taken long ago: a sweep would restore it
    client.zadd(UNACKED_INDEX_KEY, {"tag-1": taken})
    with task_lease(_task(redis_url, "tag-1", visibility_s=1)):
        wait_until(lambda: client.zscore(UNACKED_INDEX_KEY, "tag-1") > taken + 99, 10,
                   "the lease renewed")
    assert "tigertrap-lease" not in {thread.name for thread in threading.enumerate()}


def test_a_lease_never_brings_back_an_acknowledged_message(redis_url):
    lease = Lease(redis_url, UNACKED_INDEX_KEY, "acknowledged", period_s=1)
    assert lease.renew() is False
    assert redis.Redis.from_url(redis_url).zscore(UNACKED_INDEX_KEY, "acknowledged") is None


def test_a_lease_reaches_redis_through_a_unix_socket_url(tmp_path):
    from tigertrap.core.redis_server import start_redis

    with start_redis(tmp_path / "redis", unix_socket=tmp_path / "r.sock") as server:
        redis.Redis.from_url(server.url).zadd(UNACKED_INDEX_KEY, {"t": 1.0})
        assert Lease(server.socket_url, UNACKED_INDEX_KEY, "t", period_s=1).renew() is True


def test_a_task_run_outside_a_worker_has_no_lease(redis_url):
    with task_lease(_task(redis_url, None, visibility_s=1)):
        pass
    assert redis.Redis.from_url(redis_url).zcard(UNACKED_INDEX_KEY) == 0


@pytest.mark.parametrize(("timeout", "period"), [(1, 0.2), (3600, 60.0), (100, 20.0)])
def test_a_lease_is_renewed_five_times_per_timeout_at_most_every_minute(timeout, period):
    assert renew_period(timeout) == period


@pytest.mark.parametrize(("timeout", "interval"), [(1, 1), (5, 1), (100, 5), (3600, 10)])
def test_expired_leases_are_swept_for_every_twentieth_of_the_timeout(timeout, interval):
    assert restore_interval(timeout) == interval


def test_the_visibility_timeout_defaults_to_an_hour_and_is_in_the_broker_options(monkeypatch):
    monkeypatch.delenv("TIGERTRAP_VISIBILITY_TIMEOUT", raising=False)
    assert load_settings(CoreSettings).tigertrap_visibility_timeout == 3600
    options = make_celery("redis://127.0.0.1:1/0").conf.broker_transport_options
    assert options["visibility_timeout"] == 3600
    assert (options["unacked_restore_interval"], options["unacked_restore_throttle"]) == (10, 1)


@pytest.mark.parametrize(("given", "spelled"), [
    ("redis+socket:///run/tt/redis.sock", "unix:///run/tt/redis.sock"),
    ("socket:///tmp/r.sock", "unix:///tmp/r.sock"),
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
])
def test_a_celery_socket_url_is_spelled_for_redis_py(given, spelled):
    assert redis_py_url(given) == spelled
