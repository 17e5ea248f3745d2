"""``GET /metrics``: Prometheus text format."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from tigertrap.classify.api.deps import MetricsDep

__all__ = ["router"]

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def prometheus_metrics(metrics: MetricsDep) -> Response:
    """Requests, latency, images classified, overloads, inference batch sizes, queue depth."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
