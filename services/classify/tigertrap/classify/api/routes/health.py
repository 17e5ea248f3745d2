"""``GET /health``: Redis, the live workers of each stage and the model, from a kept snapshot.

An ``async`` route that reads :class:`tigertrap.classify.api.health.HealthMonitor`'s snapshot:
it makes no network call and needs no threadpool thread, so it answers in microseconds however
many clients call it (see ``health.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from tigertrap.classify.api.schemas import HealthResponse

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse)
async def health(request: Request) -> HealthResponse:
    """Liveness and what the API reaches (200 while the process lives: see ``status``)."""
    classifier = request.app.state.classifier
    return request.app.state.health.report(classifier.name if classifier else None)
