"""Prometheus metrics of the API: requests, latency, images, overloads and the engine's batches.

Each app has its own registry (several apps may live in one test process). The engine's
counters are read at scrape time from :meth:`InferenceEngine.stats`, so the batching thread
pays nothing for them. With several uvicorn workers each process reports its own figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ApiMetrics", "MetricsMiddleware"]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
UNMATCHED = "unmatched"


class _EngineCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, Any] | None]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        if stats is None:
            return
        yield GaugeMetricFamily("tigertrap_engine_queue_depth", "Crops waiting for inference",
                                value=stats["queue_depth"])
        yield GaugeMetricFamily("tigertrap_engine_queue_capacity", "Inference queue size",
                                value=stats["queue_capacity"])
        yield CounterMetricFamily("tigertrap_engine_crops", "Crops classified",
                                  value=stats["crops"])
        sizes: dict[int, int] = {int(k): v for k, v in stats["batch_sizes"].items()}
        buckets = [(str(bound), sum(n for size, n in sizes.items() if size <= bound))
                   for bound in BATCH_BUCKETS]
        buckets.append(("+Inf", sum(sizes.values())))
        yield HistogramMetricFamily(
            "tigertrap_engine_batch_size", "Crops per inference batch", buckets=buckets,
            sum_value=sum(size * n for size, n in sizes.items()))


class ApiMetrics:
    """The app's registry and the metrics routes update."""

    def __init__(self, engine_stats: Callable[[], dict[str, Any] | None]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("tigertrap_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("tigertrap_http_request_duration_seconds",
                                 "HTTP request latency", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.images = Counter("tigertrap_classified_images", "Images classified", ["mode"],
                              registry=self.registry)
        self.overloads = Counter("tigertrap_overload_rejections",
                                 "Requests refused because the inference queue was full",
                                 registry=self.registry)
        self.registry.register(_EngineCollector(engine_stats))


class MetricsMiddleware:
    """Counts every HTTP request and times it, labelled by route template (not raw path)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", UNMATCHED)
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)
