"""Dependencies the routes declare (``Depends``): settings, the API key, the loaded model."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from tigertrap.classify.api.config import ApiSettings
from tigertrap.classify.api.detection import InProcessDetector, QueueDetector
from tigertrap.classify.api.metrics import ApiMetrics
from tigertrap.classify.api.species import SpeciesClassifier

__all__ = [
    "ClassifierDep",
    "DetectorDep",
    "MetricsDep",
    "SettingsDep",
    "get_classifier",
    "get_detector",
    "get_metrics",
    "get_settings",
    "require_api_key",
    "require_multipart",
]

API_KEY_HEADER = "X-API-Key"
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
    """401 unless ``TIGERTRAP_API_KEY`` is unset or the request carries it."""
    expected = settings.tigertrap_api_key
    if not expected:
        return
    given = api_key or (bearer.credentials if bearer else None)
    if given is None or not secrets.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(
            status_code=401, headers={"WWW-Authenticate": "Bearer"},
            detail=f"missing or wrong API key: send it in the {API_KEY_HEADER} header or as "
                   "'Authorization: Bearer <key>'")


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


ClassifierDep = Annotated[SpeciesClassifier, Depends(get_classifier)]
DetectorDep = Annotated[QueueDetector | InProcessDetector, Depends(get_detector)]
MetricsDep = Annotated[ApiMetrics, Depends(get_metrics)]
