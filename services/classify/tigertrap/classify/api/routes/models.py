"""``GET /v1/models``: the loaded classifier, its classes in output order and its metrics;
``POST /v1/models/promote``: make a (retrained) bundle the served model, explicitly."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

from tigertrap.classify.api.config import CLASSIFIERS_DIR
from tigertrap.classify.api.deps import SettingsDep
from tigertrap.classify.api.schemas import (
    ModelInfo,
    ModelsResponse,
    PromoteRequest,
    PromoteResponse,
)
from tigertrap.core.bundle import BundleError
from tigertrap.core.paths import PathOutsideDataRoot
from tigertrap.core.promotion import PromotionError, promote_bundle

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


@router.post("/models/promote", response_model=PromoteResponse)
def promote(body: PromoteRequest, settings: SettingsDep) -> PromoteResponse:
    """Verify the candidate bundle and swap it into ``models/classifiers/<model>``, keeping the
    bundle it replaces; this server serves it after its next start."""
    name = body.model or settings.model
    if not name or "/" in name:
        raise HTTPException(422, "name the served bundle: give model (this server has no MODEL "
                                 "bundle name to default to)")
    root = settings.data_root()
    try:
        candidate = root.resolve(body.candidate, must_exist=True)
        done = promote_bundle(candidate, root.resolve(f"{CLASSIFIERS_DIR}/{name}"))
    except (PathOutsideDataRoot, FileNotFoundError, PromotionError, BundleError) as error:
        raise HTTPException(422, str(error)) from None
    return PromoteResponse(**{key: str(value) if value is not None else None
                              for key, value in done.items()},
                           note="restart the API (or its workers) to serve the promoted bundle")
