"""``/v1/jobs``: submit a stage or a pipeline on data-root paths, follow it, cancel it."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query

from tigertrap.classify.api.deps import SettingsDep
from tigertrap.classify.api.schemas import ErrorResponse, JobRequest, JobResponse
from tigertrap.core.contract import PathRefused, UnknownKey
from tigertrap.core.jobs import (
    JobNotFound,
    cancel_job,
    job_status,
    list_jobs,
    submit_job,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

NOT_FOUND = {404: {"model": ErrorResponse, "description": "no job with that id"}}


@router.post("", status_code=202, response_model=JobResponse,
             responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
def create_job(body: JobRequest, settings: SettingsDep) -> JobResponse:
    """Queue a named pipeline, stages in order, or one stage. An unknown pipeline, stage or
    key, and a path that leaves where its stage's contract says it belongs, are refused with
    422 before anything is queued."""
    try:
        job_id = submit_job(body.steps(), url=settings.redis_url, root=settings.data_root(),
                            pipeline=body.pipeline)
    except (PathRefused, UnknownKey) as error:
        raise HTTPException(status_code=422, detail=str(error)) from None
    except KeyError as error:  # pipeline params for a stage the pipeline lacks
        raise HTTPException(status_code=422, detail=str(error.args[0])) from None
    return JobResponse.of(job_status(job_id, url=settings.redis_url))


@router.get("", response_model=list[JobResponse])
def jobs(settings: SettingsDep,
         limit: int = Query(50, ge=1, le=1000, description="newest first")) -> list[JobResponse]:
    """The newest jobs."""
    return [JobResponse.of(status) for status in list_jobs(limit, url=settings.redis_url)]


@router.get("/{job_id}", response_model=JobResponse, responses=NOT_FOUND)
def job(job_id: str, settings: SettingsDep) -> JobResponse:
    """A job's status, current stage, progress and result paths (per stage)."""
    try:
        return JobResponse.of(job_status(job_id, url=settings.redis_url))
    except JobNotFound:
        raise HTTPException(status_code=404, detail=f"no job {job_id!r}") from None


@router.delete("/{job_id}", response_model=JobResponse, responses=NOT_FOUND)
def cancel(job_id: str, settings: SettingsDep) -> JobResponse:
    """Cancel a job: queued stages are revoked, the running one stops at its next report."""
    try:
        return JobResponse.of(cancel_job(job_id, url=settings.redis_url))
    except JobNotFound:
        raise HTTPException(status_code=404, detail=f"no job {job_id!r}") from None
