"""``GET /health`` on real servers: truthful, from heartbeats, and never blocking the API."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import BUNDLE_NAME, ApiServer, Process, class_png
from tests.conftest import wait_until
from tigertrap.core.queue import STAGES
from tigertrap.core.redis_server import start_redis
from tigertrap.core.workers import Heartbeat, WorkerBeat

#: Clients looping on /health in the load test, and the classify traffic beside them.
HEALTH_CLIENTS = 64
CLASSIFY_CLIENTS = 4
CLASSIFY_REQUESTS = 10
PROBE_ROUNDS = 3
#: A route "answers" within this (generous: the machine is shared; speed is benchmarked).
ANSWER_TIMEOUT_S = 60
WORKER_START_S = 120
EXIT_TIMEOUT_S = 30
ROUTES = ("/", "/v1/models", "/metrics", "/v1/jobs")


def _health(server: ApiServer) -> dict:
    response = httpx.get(f"{server.url}/health", timeout=ANSWER_TIMEOUT_S)
    assert response.status_code == 200
    return response.json()


@pytest.fixture
def other_stages_beating(api_redis_url: str) -> Iterator[None]:
    """Heartbeats (the workers' own code) for every stage but detect, stopped afterwards."""
    hearts = [Heartbeat(api_redis_url, WorkerBeat(hostname=f"{stage}.0@{socket.gethostname()}",
                                                  queues=[stage], pid=os.getpid(),
                                                  host=socket.gethostname(), time=time.time()),
                        period_s=0.5, ttl_s=30)
              for stage in STAGES if stage != "detect"]
    for heart in hearts:
        heart.start()
    try:
        yield
    finally:
        for heart in hearts:
            heart.stop()


def test_health_lists_live_workers_and_names_the_stages_without_one(api: ApiServer,
                                                                   detect_worker: Process):
    body = _health(api)
    assert (body["status"], body["redis"], body["model"]) == ("degraded", True, BUNDLE_NAME)
    assert len(body["workers"]["detect"]) == 1 and body["workers"]["detect"][0].startswith(
        "detect.")
    assert body["workers"]["train"] == []
    others = [stage for stage in STAGES if stage != "detect"]  # in pipeline order
    assert body["stages_without_workers"] == others
    assert body["problems"] == [f"no live worker for stage(s) {', '.join(others)}"]
    assert body["snapshot_age_s"] >= 0


def test_health_is_ok_once_every_stage_has_a_live_worker(api: ApiServer, detect_worker: Process,
                                                         other_stages_beating: None):
    body = wait_until(lambda: (b := _health(api))["status"] == "ok" and b, ANSWER_TIMEOUT_S,
                      "/health to see a live worker on every stage")
    assert body["stages_without_workers"] == [] and body["problems"] == []
    assert all(body["workers"][stage] for stage in STAGES)


def test_health_without_redis_says_degraded_and_why(api_without_redis: ApiServer):
    body = _health(api_without_redis)
    assert (body["status"], body["redis"], body["model"]) == ("degraded", False, None)
    assert body["stages_without_workers"] == list(STAGES)
    assert body["problems"][0].startswith("Redis at the job queue is unreachable")


def _worker(stage: str, env: dict[str, str], log: Path, **settings: str) -> Process:
    return Process([sys.executable, "-m", "tigertrap.core", "worker", stage, "--loglevel",
                    "INFO"], {**env, **settings}, log)


def _wait_for_worker(api: ApiServer, worker: Process, stage: str) -> str:
    def listed() -> str | None:
        if not worker.alive():
            pytest.fail(f"the {stage} worker exited:\n{worker.output()}")
        hosts = [host for host in _health(api)["workers"][stage]
                 if host.startswith(f"{stage}.{worker.handle.pid}@")]
        return hosts[0] if hosts else None

    return str(wait_until(listed, WORKER_START_S, f"/health to list the {stage} worker"))


def test_a_killed_worker_turns_its_stage_degraded_once_its_heartbeat_expires(
        api: ApiServer, base_env: dict[str, str], tmp_path: Path):
    worker = _worker("snip", base_env, tmp_path / "snip.log", TIGERTRAP_HEARTBEAT_S="0.5",
                     TIGERTRAP_HEARTBEAT_TTL_S="2")
    try:
        hostname = _wait_for_worker(api, worker, "snip")
        os.killpg(worker.handle.pid, signal.SIGKILL)  # no shutdown: only the TTL removes it
        worker.handle.wait()
        body = wait_until(lambda: (b := _health(api))["workers"]["snip"] == [] and b,
                          ANSWER_TIMEOUT_S, "the killed worker's heartbeat to expire")
    finally:
        worker.stop()
    assert body["status"] == "degraded" and "snip" in body["stages_without_workers"]
    assert hostname not in str(body)


def test_a_worker_stopped_cleanly_leaves_health_before_its_ttl(
        api: ApiServer, base_env: dict[str, str], tmp_path: Path):
    # A TTL far beyond the wait below: the worker is gone because it deleted its key.
    worker = _worker("snip", base_env, tmp_path / "snip.log", TIGERTRAP_HEARTBEAT_TTL_S="3600")
    try:
        _wait_for_worker(api, worker, "snip")
        os.killpg(worker.handle.pid, signal.SIGTERM)
        assert worker.handle.wait(timeout=EXIT_TIMEOUT_S) == 0
        wait_until(lambda: _health(api)["workers"]["snip"] == [], ANSWER_TIMEOUT_S,
                   "the stopped worker to leave /health")
    finally:
        worker.stop()


def test_a_hung_redis_turns_health_degraded_while_other_routes_answer(
        start_server: Callable[..., ApiServer], tmp_path: Path):
    redis_server = start_redis(tmp_path / "redis")  # its own: it is frozen with SIGSTOP
    try:
        server = start_server(REDIS_URL=redis_server.url)
        assert _health(server)["redis"] is True
        os.kill(redis_server.process.pid, signal.SIGSTOP)  # accepts connections, never answers
        try:
            body = wait_until(lambda: (b := _health(server))["redis"] is False and b,
                              ANSWER_TIMEOUT_S, "/health to notice the hung Redis")
            assert body["status"] == "degraded"
            assert "Redis at the job queue is unreachable" in body["problems"][0]
            with server.client() as client:
                for route in ("/", "/v1/models", "/metrics"):
                    assert client.get(route).status_code == 200, route
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        wait_until(lambda: _health(server)["redis"], ANSWER_TIMEOUT_S,
                   "/health to see Redis again")
    finally:
        redis_server.stop()


class Tally:
    """Status codes (or exception names) per route, counted by the load's clients."""

    def __init__(self) -> None:
        self.counts: dict[str, Counter[str]] = {}

    async def call(self, route: str, request: Callable[[], Awaitable[httpx.Response]]) -> None:
        try:
            response = await request()
            outcome = str(response.status_code)
        except httpx.HTTPError as error:
            outcome = type(error).__name__
        self.counts.setdefault(route, Counter())[outcome] += 1


async def _load(url: str) -> Tally:
    """64 clients loop on /health while classify clients post crops and a prober walks every
    route; the health loops end when the others are done."""
    tally = Tally()
    done = asyncio.Event()
    crop = class_png("tiger")
    limits = httpx.Limits(max_connections=HEALTH_CLIENTS + CLASSIFY_CLIENTS + 1)

    def classify(http: httpx.AsyncClient) -> Callable[[], Awaitable[httpx.Response]]:
        return lambda: http.post("/v1/classify", files=[("images", ("t.png", crop, "image/png"))])

    async def health_loop(http: httpx.AsyncClient) -> None:
        while not done.is_set():
            await tally.call("/health", lambda: http.get("/health"))

    async def classify_loop(http: httpx.AsyncClient) -> None:
        for _ in range(CLASSIFY_REQUESTS):
            await tally.call("/v1/classify", classify(http))

    async def prober(http: httpx.AsyncClient) -> None:
        for _ in range(PROBE_ROUNDS):
            for route in ROUTES:
                await tally.call(route, lambda r=route: http.get(r))
            await tally.call("/v1/classify", classify(http))

    async with httpx.AsyncClient(base_url=url, timeout=ANSWER_TIMEOUT_S, limits=limits) as http:
        loops = [asyncio.create_task(health_loop(http)) for _ in range(HEALTH_CLIENTS)]
        await asyncio.gather(prober(http), *(classify_loop(http)
                                             for _ in range(CLASSIFY_CLIENTS)))
        done.set()
        await asyncio.gather(*loops)
    return tally


def test_every_route_keeps_answering_while_64_clients_loop_on_health(
        start_server: Callable[..., ApiServer]):
    server = start_server()  # its own: it is stopped with SIGTERM at the end
    tally = asyncio.run(_load(server.url))

    assert set(tally.counts["/health"]) == {"200"}, tally.counts
    assert tally.counts["/health"]["200"] >= HEALTH_CLIENTS
    assert tally.counts["/v1/classify"] == {
        "200": CLASSIFY_CLIENTS * CLASSIFY_REQUESTS + PROBE_ROUNDS}, tally.counts
    for route in ROUTES:
        assert tally.counts[route] == {"200": PROBE_ROUNDS}, tally.counts
    with server.client() as client:  # and afterwards
        for route in (*ROUTES, "/health"):
            assert client.get(route).status_code == 200, route
        assert client.post("/v1/classify", files=[(
            "images", ("t.png", class_png("tiger"), "image/png"))]).status_code == 200

    os.killpg(server.process.handle.pid, signal.SIGTERM)
    # uvicorn shuts down, then re-raises the signal it caught: -SIGTERM is its normal exit.
    code = server.process.handle.wait(timeout=EXIT_TIMEOUT_S)
    assert code in (0, -signal.SIGTERM), server.process.output()
