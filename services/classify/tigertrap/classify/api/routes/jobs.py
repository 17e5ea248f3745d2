"""``/v1/jobs``: submit a stage or a pipeline on data-root paths, follow it, cancel it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query

from tigertrap.classify.api.deps import SettingsDep
from tigertrap.classify.api.schemas import ErrorResponse, JobRequest, JobResponse
from tigertrap.core.jobs import (
    JobNotFound,
    StageRequest,
    cancel_job,
    job_status,
    list_jobs,
    submit_job,
)
from tigertrap.core.paths import DataRoot, PathOutsideDataRoot

__all__ = ["PATH_KEY_SUFFIXES", "path_params", "router"]

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

#: A parameter whose key ends like this names a file or folder under the data root.
PATH_KEY_SUFFIXES = ("_dir", "_file", "_list", "_csv", "_path", "_root")
#: Keys that name either a known model or a file; they are paths when they look like one.
MODEL_KEYS = ("model", "md_model")
NOT_FOUND = {404: {"model": ErrorResponse, "description": "no job with that id"}}


def _looks_like_path(key: str, value: Any) -> bool:
    if not isinstance(value, str) or not value:
        return False
    key = key.lower()
    if key.endswith(PATH_KEY_SUFFIXES):
        return True
    return key in MODEL_KEYS and ("/" in value or "\\" in value or "." in value)


def path_params(step: StageRequest) -> dict[str, str]:
    """The parameters of ``step`` that name files or folders."""
    return {key: value for key, value in step.params.items() if _looks_like_path(key, value)}


def _check_paths(steps: list[StageRequest], root: DataRoot) -> None:
    for position, step in enumerate(steps):
        for key, value in path_params(step).items():
            try:
                root.resolve(value)
            except PathOutsideDataRoot as error:
                raise HTTPException(
                    status_code=422,
                    detail=f"stages[{position}] ({step.stage}) parameter {key}: {error}; paths "
                           "are relative to the data root") from None


@router.post("", status_code=202, response_model=JobResponse,
             responses={422: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
def create_job(body: JobRequest, settings: SettingsDep) -> JobResponse:
    """Queue a stage or a pipeline; every path parameter must lie under the data root."""
    steps = body.steps()
    _check_paths(steps, settings.data_root())
    job_id = submit_job(steps, url=settings.redis_url)
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
