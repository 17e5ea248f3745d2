"""Dependencies the routes declare (``Depends``): settings, the API key, the loaded model."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from tigertrap.classify.api.config import ApiSettings
from tigertrap.classify.api.detection import InProcessDetector, QueueDetector
from tigertrap.classify.api.guards import API_KEY_HEADER, MISSING_KEY_MESSAGE, key_accepted
from tigertrap.classify.api.metrics import ApiMetrics
from tigertrap.classify.api.pixel_budget import PixelBudget
from tigertrap.classify.api.species import SpeciesClassifier

__all__ = [
    "ClassifierDep",
    "DetectorDep",
    "MetricsDep",
    "PixelBudgetDep",
    "SettingsDep",
    "get_classifier",
    "get_detector",
    "get_metrics",
    "get_pixel_budget",
    "get_settings",
    "require_api_key",
    "require_multipart",
]

_api_key = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                        description="the server's TIGERTRAP_API_KEY")
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <TIGERTRAP_API_KEY>")


def get_settings(request: Request) -> ApiSettings:
    """The settings the app was created with."""
    return request.app.state.settings


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


def require_api_key(
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(_api_key)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> None:
    """401 unless ``TIGERTRAP_API_KEY`` is unset or the request carries it.

    :class:`~tigertrap.classify.api.guards.RequestGuard` has already refused such a request
    before its body was read; this dependency documents the scheme in OpenAPI and keeps the
    routes safe should they be mounted without the guard.
    """
    authorization = f"Bearer {bearer.credentials}" if bearer else None
    if not key_accepted(settings.tigertrap_api_key, api_key, authorization):
        raise HTTPException(status_code=401, headers={"WWW-Authenticate": "Bearer"},
                            detail=MISSING_KEY_MESSAGE)


def require_multipart(request: Request) -> None:
    """415 unless the body is ``multipart/form-data`` (checked before the form is validated)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise HTTPException(
            status_code=415,
            detail=f"send the images as multipart/form-data in the field 'images' (got content "
                   f"type {content_type or 'none'!r})")


def get_classifier(request: Request) -> SpeciesClassifier:
    """The loaded classifier; 503 when the server runs without a model."""
    classifier = request.app.state.classifier
    if classifier is None:
        raise HTTPException(status_code=503, detail="no classifier is loaded: start the server "
                                                    "with MODEL set to a bundle name or folder")
    return classifier


def get_detector(request: Request) -> QueueDetector | InProcessDetector:
    """The full-frame detector (queue or in-process, per ``DETECTION_MODE``)."""
    return request.app.state.detector


def get_metrics(request: Request) -> ApiMetrics:
    """The app's Prometheus metrics."""
    return request.app.state.metrics


def get_pixel_budget(request: Request) -> PixelBudget:
    """The process's decoded-pixel budget (``MAX_PROCESS_PIXELS``)."""
    return request.app.state.pixel_budget


ClassifierDep = Annotated[SpeciesClassifier, Depends(get_classifier)]
DetectorDep = Annotated[QueueDetector | InProcessDetector, Depends(get_detector)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
PixelBudgetDep = Annotated[PixelBudget, Depends(get_pixel_budget)]
