"""``GET /v1/models``: the loaded classifier, its classes in output order and its metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tigertrap.classify.api.deps import SettingsDep
from tigertrap.classify.api.schemas import ModelInfo, ModelsResponse

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelsResponse)
def models(request: Request, settings: SettingsDep) -> ModelsResponse:
    """The model this server classifies with (an empty list when none is configured)."""
    classifier = request.app.state.classifier
    if classifier is None:
        return ModelsResponse(models=[])
    engine = classifier.engine
    manifest = engine.manifest
    return ModelsResponse(models=[ModelInfo(
        name=manifest.name, version=manifest.version, backend=engine.backend,
        precision=engine.precision,
        input_size=manifest.input_size, crop_method=manifest.crop_method,
        snip_size=manifest.snip_size, classes=list(engine.class_map.names),
        tiger_class=settings.tiger_class, tiger_threshold=classifier.tiger_threshold,
        metrics=manifest.metrics)])
