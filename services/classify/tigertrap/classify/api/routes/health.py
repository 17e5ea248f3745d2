"""``GET /health``: is the job queue reachable, which workers serve which queue, which model."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import APIRouter, Request

from tigertrap.classify.api.config import ApiSettings
from tigertrap.classify.api.deps import SettingsDep
from tigertrap.classify.api.schemas import HealthResponse
from tigertrap.core.queue import DEFAULT_REDIS_URL, STAGES, celery_app

__all__ = ["router"]

router = APIRouter(tags=["health"])


def _redis_reachable(url: str, timeout: float) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _workers(url: str, timeout: float) -> dict[str, list[str]]:
    workers: dict[str, list[str]] = {stage: [] for stage in STAGES}
    replies: dict[str, Any] = celery_app(url).control.inspect(timeout=timeout).active_queues()
    for host, queues in sorted((replies or {}).items()):
        for queue in queues or []:
            workers.setdefault(queue["name"], []).append(host)
    return workers


def check_health(settings: ApiSettings, model: str | None) -> HealthResponse:
    """Ping Redis and ask the workers which queues they consume."""
    url = settings.redis_url or DEFAULT_REDIS_URL
    reachable = _redis_reachable(url, settings.health_timeout_s)
    workers = (_workers(url, settings.health_timeout_s) if reachable
               else {stage: [] for stage in STAGES})
    return HealthResponse(status="ok" if reachable else "degraded", redis=reachable,
                          workers=workers, model=model)


@router.get("/health", response_model=HealthResponse)
def health(settings: SettingsDep, request: Request) -> HealthResponse:
    """Liveness and what the API reaches (200 even when Redis is down: see ``status``)."""
    classifier = request.app.state.classifier
    return check_health(settings, classifier.name if classifier else None)
