"""The FastAPI application: job endpoints, classification, health, metrics and the web page.

:func:`create_app` builds an app from one :class:`ApiSettings`; its lifespan loads the
classifier bundle named by ``MODEL`` into an :class:`InferenceEngine` (and MegaDetector when
``DETECTION_MODE=inprocess``) and stops the engine on shutdown. Without ``MODEL`` the server
still serves jobs and health; ``/v1/classify`` answers 503.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import kombu.exceptions
import redis
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from tigertrap.classify.api.config import ApiSettings
from tigertrap.classify.api.deps import require_api_key
from tigertrap.classify.api.detection import DetectionFailed, InProcessDetector, make_detector
from tigertrap.classify.api.guards import RequestGuard
from tigertrap.classify.api.health import HealthMonitor
from tigertrap.classify.api.metrics import ApiMetrics, MetricsMiddleware
from tigertrap.classify.api.pixel_budget import PixelBudget, PixelBudgetExhausted
from tigertrap.classify.api.routes import classify, health, jobs, metrics, models, pages, reviews
from tigertrap.classify.api.species import SpeciesClassifier
from tigertrap.classify.api.uploads import UploadRejected
from tigertrap.classify.engine import EngineOverloaded, InferenceEngine
from tigertrap.classify.review.store import ReviewStore, database_url
from tigertrap.core.config import load_settings

__all__ = ["create_app"]

log = logging.getLogger(__name__)

#: What a lost connection to the job queue raises (redis directly, or Celery's kombu).
QUEUE_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, kombu.exceptions.OperationalError)
#: pydantic's prefix on messages of custom validators; the message itself says enough.
VALUE_ERROR = "Value error, "

TITLE = "tigertrap"
DESCRIPTION = ("Camera-trap species classification with a tiger focus: classify uploaded "
               "images, and run pipeline stages (download, detect, snip, train, classify) as "
               "jobs on the data volume. When TIGERTRAP_API_KEY is set, /v1 needs it in the "
               "X-API-Key header or as a Bearer token.")


def _load_classifier(settings: ApiSettings) -> SpeciesClassifier | None:
    bundle_dir = settings.bundle_dir()
    if bundle_dir is None:
        log.warning("no MODEL configured: /v1/classify will answer 503")
        return None
    engine = InferenceEngine(bundle_dir, backend=settings.backend,
                             max_batch_size=settings.batch_size,
                             max_wait_ms=settings.max_wait_ms, max_queue=settings.max_queue,
                             threads=settings.threads, precision=settings.precision)
    engine.start()
    threshold = settings.tiger_threshold
    if threshold is None:
        threshold = engine.manifest.tiger_threshold
    return SpeciesClassifier(engine, top_k=settings.top_k, tiger_class=settings.tiger_class,
                             tiger_threshold=threshold)


def _open_review_store(settings: ApiSettings) -> ReviewStore:
    """The review store (migrated); an unreachable DATABASE_URL stops start-up naming it."""
    return ReviewStore.open(database_url(settings.tigertrap_data, settings.database_url))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: ApiSettings = app.state.settings
    app.state.review_store = await run_in_threadpool(_open_review_store, settings)
    await app.state.health.start()
    try:
        app.state.classifier = await run_in_threadpool(_load_classifier, settings)
        if isinstance(app.state.detector, InProcessDetector):
            await run_in_threadpool(app.state.detector.load)
        yield
    finally:
        await app.state.health.stop()
        if app.state.classifier is not None:
            app.state.classifier.engine.stop()
        app.state.review_store.close()


def _error(status_code: int, detail: str, headers: dict[str, str] | None = None,
           errors: list[dict[str, Any]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(status_code=status_code, content=body, headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    text = ""
    for part in parts:
        text += f"[{part}]" if part.isdigit() else (f".{part}" if text else part)
    return text or "request body"


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [f"{_location(e['loc'])}: {e['msg'].removeprefix(VALUE_ERROR)}"
                    for e in error.errors()]
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                  for e in error.errors()]
        return _error(422, "; ".join(problems), errors=errors)

    @app.exception_handler(UploadRejected)
    async def rejected(request: Request, error: UploadRejected) -> JSONResponse:
        return _error(error.status_code, error.message)

    @app.exception_handler(DetectionFailed)
    async def detection_failed(request: Request, error: DetectionFailed) -> JSONResponse:
        return _error(error.status_code, error.message)

    async def queue_down(request: Request, error: Exception) -> JSONResponse:
        return _error(503, f"the job queue is unreachable ({type(error).__name__}: {error}); "
                           "is Redis running and REDIS_URL right?")

    for unreachable in QUEUE_ERRORS:
        app.add_exception_handler(unreachable, queue_down)

    @app.exception_handler(EngineOverloaded)
    async def overloaded(request: Request, error: EngineOverloaded) -> JSONResponse:
        app.state.metrics.overloads.inc()
        retry = str(app.state.settings.retry_after_s)
        return _error(503, f"the classifier is busy ({error}); retry in {retry} s",
                      headers={"Retry-After": retry})

    @app.exception_handler(PixelBudgetExhausted)
    async def decoding_full(request: Request, error: PixelBudgetExhausted) -> JSONResponse:
        app.state.metrics.overloads.inc()
        retry = str(app.state.settings.retry_after_s)
        return _error(503, f"the server is busy decoding images ({error}); retry in {retry} s",
                      headers={"Retry-After": retry})


def _engine_stats(app: FastAPI) -> dict[str, Any] | None:
    classifier = getattr(app.state, "classifier", None)
    return classifier.engine.stats() if classifier is not None else None


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The API for ``settings`` (default: read from the environment with ``load_settings``)."""
    settings = settings or load_settings(ApiSettings)
    app = FastAPI(title=TITLE, description=DESCRIPTION, version="0.1.0", lifespan=_lifespan)
    app.state.settings = settings
    app.state.classifier = None
    app.state.pixel_budget = PixelBudget(settings.max_process_pixels,
                                         wait_s=settings.retry_after_s)
    app.state.detector = make_detector(settings, app.state.pixel_budget)
    app.state.health = HealthMonitor(settings.redis_url, refresh_s=settings.health_refresh_s,
                                     timeout_s=settings.health_timeout_s)
    app.state.metrics = ApiMetrics(lambda: _engine_stats(app))
    # The guard sits inside the metrics, so its refusals are counted too.
    app.add_middleware(RequestGuard, settings=settings)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    _add_error_handlers(app)
    secured = [Depends(require_api_key)]
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(jobs.router, dependencies=secured)
    app.include_router(classify.router, dependencies=secured)
    app.include_router(models.router, dependencies=secured)
    app.include_router(reviews.router, dependencies=secured)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC_DIR), name="static")
    return app
