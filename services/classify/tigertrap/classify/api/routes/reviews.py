"""``/v1/reviews``: review jobs, their queues, detections, frames and verdicts.

Thin adapters over :mod:`tigertrap.classify.review`; the store is the app's
(``app.state.review_store``, opened at start-up). A verdict for a detection that does not exist
is a 404; a label outside the job's classes, ``not_an_animal`` and ``unsure`` is a 422.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from tigertrap.classify.api.deps import SettingsDep
from tigertrap.classify.api.schemas import (
    ReviewDetection,
    ReviewJobRequest,
    ReviewJobSummary,
    ReviewQueue,
    ReviewQueueItem,
    VerdictRequest,
)
from tigertrap.classify.review.intake import intake_job
from tigertrap.classify.review.queues import job_queue
from tigertrap.classify.review.schema import SPECIAL_LABELS
from tigertrap.classify.review.store import (
    DetectionNotFound,
    InvalidVerdict,
    JobExists,
    ReviewJobNotFound,
    ReviewStore,
)
from tigertrap.core.paths import PathOutsideDataRoot

__all__ = ["get_review_store", "router"]

router = APIRouter(prefix="/v1/reviews", tags=["reviews"])


def get_review_store(request: Request) -> ReviewStore:
    """The review store the app opened at start-up."""
    return request.app.state.review_store


StoreDep = Annotated[ReviewStore, Depends(get_review_store)]


def _summary(store: ReviewStore, name: str) -> ReviewJobSummary:
    job = store.job(name)
    queue = job_queue(store, name)
    return ReviewJobSummary(name=name, classes=job["classes"], tiger_class=job["tiger_class"],
                            detections=len(store.detections(name)), progress=queue.progress)


@router.get("/jobs", response_model=list[ReviewJobSummary])
def list_jobs(store: StoreDep) -> list[ReviewJobSummary]:
    """Every review job with its progress."""
    return [_summary(store, name) for name in store.job_names()]


@router.post("/jobs", response_model=ReviewJobSummary, status_code=201)
def add_job(body: ReviewJobRequest, store: StoreDep, settings: SettingsDep) -> ReviewJobSummary:
    """Bring a classify job's classified MD file into the review store."""
    try:
        intake_job(store, settings.tigertrap_data, name=body.name, md_file=body.md_file,
                   image_base=body.image_base, tiger_class=body.tiger_class)
    except JobExists as error:
        raise HTTPException(409, f"{error}; choose another name") from None
    except (PathOutsideDataRoot, FileNotFoundError, ValueError) as error:
        raise HTTPException(422, str(error)) from None
    return _summary(store, body.name)


@router.get("/jobs/{job}/queue", response_model=ReviewQueue)
def queue(job: str, store: StoreDep,
          order: Annotated[Literal["margin", "entropy"], Query(
              description="how uncertain detections are ranked")] = "margin") -> ReviewQueue:
    """The detections to review, in order: tiger flags, most uncertain, QC sample."""
    try:
        record = store.job(job)
        built = job_queue(store, job, order=order)
    except ReviewJobNotFound as error:
        raise HTTPException(404, f"{error}; GET /v1/reviews/jobs lists them") from None
    return ReviewQueue(
        job=job, classes=record["classes"], labels=[*record["classes"], *SPECIAL_LABELS],
        order=order, sections=built.counts, progress=built.progress,
        items=[ReviewQueueItem(id=i, section=s, reviewed=i in built.reviewed)
               for i, s in built.items])


def _record(store: ReviewStore, detection_id: int) -> ReviewDetection:
    try:
        return ReviewDetection(**store.detection_record(detection_id))
    except DetectionNotFound as error:
        raise HTTPException(404, str(error)) from None


@router.get("/detections/{detection_id}", response_model=ReviewDetection)
def detection(detection_id: int, store: StoreDep) -> ReviewDetection:
    """A detection, the model's top-k and every verdict on it."""
    return _record(store, detection_id)


@router.get("/detections/{detection_id}/frame", response_class=FileResponse)
def frame(detection_id: int, store: StoreDep, settings: SettingsDep) -> FileResponse:
    """The full frame the detection lies in (the page draws the box and the enlarged crop)."""
    try:
        row = store.detection(detection_id)
        job = store.job_of(detection_id)
        path = settings.data_root().resolve(f"{job['image_base']}/{row['file']}",
                                            must_exist=True)
    except DetectionNotFound as error:
        raise HTTPException(404, str(error)) from None
    except (PathOutsideDataRoot, FileNotFoundError) as error:
        raise HTTPException(404, f"the frame of detection {detection_id} cannot be read "
                                 f"({error})") from None
    return FileResponse(path)


@router.post("/detections/{detection_id}/verdicts", response_model=ReviewDetection,
             status_code=201)
async def add_verdict(detection_id: int, body: VerdictRequest,
                      store: StoreDep) -> ReviewDetection:
    """Record a verdict (``label: null`` withdraws the reviewer's previous one); answers the
    detection with every verdict, so the page sees others' verdicts and conflicts."""
    try:
        await run_in_threadpool(store.add_verdict, detection_id, body.label, body.reviewer)
    except DetectionNotFound as error:
        raise HTTPException(404, str(error)) from None
    except InvalidVerdict as error:
        raise HTTPException(422, str(error)) from None
    return await run_in_threadpool(_record, store, detection_id)
