"""Settings of the HTTP API (one object, read once at start-up; see ``services/classify/api.env``).

Keys are MEWC-style and case-insensitive, shared with the batch mode where the concept is the
same (``MODEL``, ``BACKEND``, ``PRECISION``, ``BATCH_SIZE``, ``MAX_WAIT_MS``, ``MAX_QUEUE``,
``THREADS``, ``LOWER_CONF``, ``TOP_K``, ``TIGER_CLASS``, ``TIGER_THRESHOLD``), so one
``classify.env`` can configure both. ``MODEL`` is a bundle name under
``<data>/models/classifiers/``, or a folder (relative to the data root, or absolute).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from tigertrap.classify.config import EngineSettings
from tigertrap.core.paths import DataRoot

__all__ = ["CLASSIFIERS_DIR", "DETECTION_MODES", "ApiSettings"]

#: Where bundles named by ``MODEL`` live, relative to the data root.
CLASSIFIERS_DIR = "models/classifiers"
DETECTION_MODES = ("queue", "inprocess")
MIB = 1024 * 1024
#: Room for multipart headers and boundaries above MAX_IMAGES x MAX_UPLOAD_BYTES.
MULTIPART_ALLOWANCE = MIB
#: The default MAX_REQUEST_BYTES never exceeds this (what one request may spool to disk).
DEFAULT_REQUEST_BYTES_BOUND = 256 * MIB


class ApiSettings(EngineSettings):
    """Everything the API process needs: data, queue, key, model, limits and detection."""

    # where things are
    tigertrap_data: Path = Field(default=Path("data"), description="the data root")
    redis_url: str | None = Field(default=None, description="job queue; default local Redis")
    tigertrap_api_key: str | None = Field(
        default=None, description="when set, /v1/* needs it (X-API-Key or Bearer)")
    database_url: str | None = Field(
        default=None, description="review store (SQLAlchemy URL, e.g. postgresql+psycopg://"
                                  "...); unset: SQLite at <data>/review/review.sqlite")

    # the classifier (engine settings and how results read: EngineSettings)
    model: str | None = Field(default=None, description="bundle name or folder; none: no "
                                                        "classification endpoint")

    # request limits
    max_upload_bytes: int = Field(default=20 * MIB, ge=1, description="largest image file")
    max_images: int = Field(default=32, ge=1, description="images per request")
    max_request_bytes: int | None = Field(
        default=None, ge=1, description="whole request body, refused while streaming; default "
                                        "MAX_IMAGES x MAX_UPLOAD_BYTES + 1 MiB, at most 256 MiB")
    max_request_pixels: int = Field(
        default=640_000_000, ge=1, description="decoded pixels per request (from the headers)")
    max_process_pixels: int = Field(
        default=320_000_000, ge=1, description="pixels decoded at once in this process, shared "
                                               "by concurrent requests")
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After on overload")

    # connections: slow or idle clients
    header_timeout_s: float = Field(default=10.0, gt=0,
                                    description="a request head must arrive within this")
    body_timeout_s: float = Field(default=120.0, gt=0,
                                  description="a request body must arrive within this")
    body_idle_timeout_s: float = Field(default=15.0, gt=0,
                                       description="longest pause while a body arrives")
    max_connections: int = Field(default=256, ge=1, description="open connections and "
                                 "requests at once (uvicorn limit_concurrency); beyond: 503")

    # full frames: where MegaDetector runs
    detection_mode: Literal["queue", "inprocess"] = Field(
        default="queue", description="queue: the detect worker; inprocess: this process")
    md_model: str = Field(default="MDV5A", description="detector name or data-root .pt path")
    detection_threshold: float = Field(default=0.1, ge=0.0, le=1.0,
                                       description="detections returned at or above this conf")
    detect_timeout_s: float = Field(default=300.0, gt=0, description="wait for a detect job")
    detect_poll_s: float = Field(default=0.2, gt=0, description="job status poll interval")
    keep_uploads: bool = Field(default=False, description="keep full frames sent to the detect "
                                                          "worker under <data>/jobs/<id>/")
    health_timeout_s: float = Field(default=0.5, gt=0,
                                    description="Redis socket timeout of the health refresher")
    health_refresh_s: float = Field(default=1.0, gt=0,
                                    description="how often /health's snapshot is refreshed")

    @model_validator(mode="after")
    def _limits_fit(self) -> ApiSettings:
        if self.max_request_bytes is not None and self.max_request_bytes < self.max_upload_bytes:
            raise ValueError(f"MAX_REQUEST_BYTES ({self.max_request_bytes}) is below "
                             f"MAX_UPLOAD_BYTES ({self.max_upload_bytes}): one image of the "
                             "allowed size could never be sent")
        if self.body_idle_timeout_s > self.body_timeout_s:
            raise ValueError(f"BODY_IDLE_TIMEOUT_S ({self.body_idle_timeout_s:g}) is above "
                             f"BODY_TIMEOUT_S ({self.body_timeout_s:g})")
        return self

    def request_byte_limit(self) -> int:
        """``MAX_REQUEST_BYTES``, or its default derived from the per-image limits."""
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        wanted = self.max_images * self.max_upload_bytes + MULTIPART_ALLOWANCE
        return max(min(wanted, DEFAULT_REQUEST_BYTES_BOUND),
                   self.max_upload_bytes + MULTIPART_ALLOWANCE)

    def data_root(self) -> DataRoot:
        """The data root all request paths are relative to."""
        return DataRoot(self.tigertrap_data)

    def bundle_dir(self) -> Path | None:
        """The classifier bundle folder ``MODEL`` names, or None when no model is configured."""
        if not self.model:
            return None
        given = Path(self.model)
        if given.is_absolute():
            return given
        if len(given.parts) == 1:
            given = Path(CLASSIFIERS_DIR) / given
        return self.data_root().resolve(given)
