"""``POST /v1/classify``: JPEG/PNG uploads in, detections, top-k species and a tiger flag out."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, UploadFile

from tigertrap.classify.api.deps import (
    ClassifierDep,
    DetectorDep,
    MetricsDep,
    SettingsDep,
    require_multipart,
)
from tigertrap.classify.api.schemas import ClassifyMode, ClassifyResponse, ErrorResponse
from tigertrap.classify.api.species import classify_uploads
from tigertrap.classify.api.uploads import read_uploads

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["classify"])

ERRORS = {
    413: {"model": ErrorResponse, "description": "too many images, or an image too large"},
    415: {"model": ErrorResponse, "description": "not multipart, or a part that is no image"},
    422: {"model": ErrorResponse, "description": "a file that is not a readable JPEG/PNG"},
    502: {"model": ErrorResponse, "description": "the detection job failed (full mode)"},
    503: {"model": ErrorResponse, "description": "overloaded (see Retry-After) or no model"},
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
    mode: Annotated[ClassifyMode, Form(
        description="crops: each image is one animal crop; full: camera-trap frames, "
                    "MegaDetector finds the animals first")] = "crops",
) -> ClassifyResponse:
    """Classify uploaded images; per image: detections with boxes, top-k species, tiger flag."""
    # A crop is only resized to the input size, so a large JPEG may be decoded at 1/2..1/8.
    size = classifier.engine.input_size
    uploads = await read_uploads(images, max_images=settings.max_images,
                                 max_bytes=settings.max_upload_bytes,
                                 draft_size=(size, size) if mode == "crops" else None)
    results = await classify_uploads(uploads, mode, classifier, detector, settings.lower_conf)
    metrics.images.labels(mode).inc(len(results))
    return ClassifyResponse(model=classifier.name, mode=mode, images=results)
