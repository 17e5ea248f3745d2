"""``POST /v1/classify``: JPEG/PNG uploads in, detections, top-k species and a tiger flag out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile

from tigertrap.classify.api.deps import (
    ClassifierDep,
    DetectorDep,
    MetricsDep,
    PixelBudgetDep,
    SettingsDep,
    require_multipart,
)
from tigertrap.classify.api.schemas import ClassifyMode, ClassifyResponse, ErrorResponse
from tigertrap.classify.api.species import classify_uploads
from tigertrap.classify.api.uploads import read_uploads

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["classify"])

ERRORS = {
    401: {"model": ErrorResponse, "description": "missing or wrong API key (when one is set)"},
    408: {"model": ErrorResponse, "description": "the body arrived too slowly"},
    413: {"model": ErrorResponse, "description": "too many images, an image too large, a body "
                                                "over MAX_REQUEST_BYTES or pixels over the "
                                                "budgets"},
    415: {"model": ErrorResponse, "description": "not multipart, or a part that is no image"},
    422: {"model": ErrorResponse, "description": "a file that is not a readable JPEG/PNG"},
    502: {"model": ErrorResponse, "description": "the detection job failed (full mode)"},
    503: {"model": ErrorResponse, "description": "busy: inference queue or pixel budget full "
                                                "(see Retry-After); or no model"},
    504: {"model": ErrorResponse, "description": "the detection job did not finish in time"},
}


@router.post("/classify", response_model=ClassifyResponse, responses=ERRORS,
             dependencies=[Depends(require_multipart)])
async def classify(
    images: Annotated[list[UploadFile], File(description="one or more JPEG/PNG images")],
    settings: SettingsDep,
    classifier: ClassifierDep,
    detector: DetectorDep,
    metrics: MetricsDep,
    budget: PixelBudgetDep,
    mode: Annotated[ClassifyMode, Form(
        description="crops: each image is one animal crop; full: camera-trap frames, "
                    "MegaDetector finds the animals first")] = "crops",
) -> ClassifyResponse:
    """Classify uploaded images; per image: detections with boxes, top-k species, tiger flag."""
    uploads = await read_uploads(images, settings)
    results = await classify_uploads(uploads, mode, classifier, detector, settings.lower_conf,
                                     budget)
    metrics.images.labels(mode).inc(len(results))
    return ClassifyResponse(model=classifier.name, mode=mode, images=results)
