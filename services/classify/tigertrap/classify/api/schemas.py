"""Request and response shapes of the HTTP API; they are also its OpenAPI documentation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from tigertrap.core.contract import stage_names
from tigertrap.core.jobs import JobStatus, StageRequest, pipeline_stages
from tigertrap.core.stages import PIPELINES

__all__ = [
    "ClassifiedImage",
    "ClassifyResponse",
    "DetectionResult",
    "ErrorResponse",
    "HealthResponse",
    "JobRequest",
    "JobResponse",
    "ModelInfo",
    "ModelsResponse",
    "PromoteRequest",
    "PromoteResponse",
    "ReviewDetection",
    "ReviewJobRequest",
    "ReviewJobSummary",
    "ReviewQueue",
    "ReviewQueueItem",
    "SpeciesScore",
    "VerdictRecord",
    "VerdictRequest",
]

ClassifyMode = Literal["crops", "full"]


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: a sentence saying what to change."""

    detail: str
    errors: list[dict[str, Any]] = Field(default_factory=list,
                                         description="field-level errors, when validation failed")


class HealthResponse(BaseModel):
    """``GET /health``: from a snapshot the server keeps current in the background."""

    status: Literal["ok", "degraded"] = Field(
        description="ok: Redis answered and every stage has a live worker")
    redis: bool = Field(description="the job queue's Redis answered at the last refresh")
    workers: dict[str, list[str]] = Field(
        description="queue name -> live workers consuming it (empty list: none alive)")
    model: str | None = Field(description="the loaded classifier bundle's name")
    stages_without_workers: list[str] = Field(
        default_factory=list, description="stages with no live worker, in pipeline order")
    snapshot_age_s: float | None = Field(
        default=None, description="seconds since Redis and the workers were last read")
    problems: list[str] = Field(default_factory=list,
                                description="why the status is degraded, one sentence each")


class JobRequest(BaseModel):
    """``POST /v1/jobs``: a named pipeline (``pipeline`` + ``params`` per stage), stages in
    order (``stages``), or one stage (``stage`` + ``params``).

    Every parameter that names a file or folder is relative to the data root. In a job of
    several stages, a stage's inputs default to the earlier stages' outputs.
    """

    model_config = {"json_schema_extra": {"examples": [
        {"pipeline": "process-season", "params": {
            "detect": {"INPUT_DIR": "datasets/season-1/images"},
            "classify": {"MODEL": "models/classifiers/tigers-v1"}}},
        {"stages": [{"stage": "detect", "params": {"INPUT_DIR": "datasets/demo/images"}},
                    {"stage": "snip", "params": {"SNIP_SIZE": 300}}]},
        {"stage": "snip", "params": {"MD_FILE": "datasets/demo/images/md.json"}},
    ]}}

    pipeline: str | None = Field(default=None, description=(
        "a named pipeline: " + "; ".join(f"{p.name} ({' -> '.join(p.stages)})"
                                         for p in PIPELINES.values())))
    stages: list[StageRequest] | None = Field(default=None, min_length=1)
    stage: str | None = Field(default=None, description="shortcut for a one-stage job")
    params: dict[str, Any] | None = Field(
        default=None, description="with ``stage``: its keys; with ``pipeline``: "
                                  "{stage: {KEY: value}}")

    @field_validator("stage")
    @classmethod
    def _known_stage(cls, value: str | None) -> str | None:
        if value is not None and value not in stage_names():
            raise ValueError(f"unknown stage {value!r}; stages are {', '.join(stage_names())}")
        return value

    @field_validator("pipeline")
    @classmethod
    def _known_pipeline(cls, value: str | None) -> str | None:
        if value is not None and value not in PIPELINES:
            raise ValueError(f"unknown pipeline {value!r}; pipelines are "
                             f"{', '.join(PIPELINES)}")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> JobRequest:
        forms = [name for name in ("pipeline", "stages", "stage")
                 if getattr(self, name) is not None]
        if len(forms) > 1:
            raise ValueError(f"give one of 'pipeline', 'stages' or 'stage', not "
                             f"{' and '.join(repr(f) for f in forms)}")
        if not forms:
            raise ValueError("field 'stages' is required: a list of {\"stage\", \"params\"} "
                             "(or 'pipeline' with params per stage, or 'stage' with 'params')")
        if self.stages is not None and self.params is not None:
            raise ValueError("'params' goes with 'stage' or 'pipeline'; inside 'stages' each "
                             "step has its own")
        if self.pipeline is not None and self.params is not None and not all(
                isinstance(value, dict) for value in self.params.values()):
            raise ValueError("with 'pipeline', 'params' maps each stage to its keys, e.g. "
                             "{\"detect\": {\"INPUT_DIR\": \"datasets/x/images\"}}")
        return self

    def steps(self) -> list[StageRequest]:
        """The job's stages in order.

        Raises:
            KeyError: pipeline params for a stage the pipeline does not have.
        """
        if self.pipeline is not None:
            return pipeline_stages(self.pipeline, self.params or {})
        if self.stages is not None:
            return list(self.stages)
        return [StageRequest(stage=self.stage or "", params=self.params or {})]



class JobResponse(JobStatus):
    """A job's record: status, current stage, progress and result paths per stage."""

    progress: float | None = Field(default=None,
                                   description="processed / total of the current stage")

    @classmethod
    def of(cls, status: JobStatus) -> JobResponse:
        """The response for a core job record."""
        progress = status.processed / status.total if status.total else None
        return cls(**status.model_dump(), progress=progress)


class SpeciesScore(BaseModel):
    """One class and its score."""

    name: str
    score: float


class DetectionResult(BaseModel):
    """One detection (in ``crops`` mode: the whole upload) and what it was classified as."""

    category: str = Field(description="MegaDetector category id: 1 animal, 2 person, 3 vehicle")
    label: str = Field(description="the category's name")
    conf: float | None = Field(description="detection confidence (None in crops mode)")
    bbox: list[float] = Field(description="[x_min, y_min, width, height], 0-1, top-left origin")
    species: list[SpeciesScore] = Field(default_factory=list,
                                        description="top-k classes, best first (animals only)")
    tiger: bool = False


class ClassifiedImage(BaseModel):
    """The result for one uploaded image."""

    file: str = Field(description="the upload's file name")
    width: int
    height: int
    detections: list[DetectionResult]
    top_species: str | None = Field(description="best class over the image's detections")
    tiger: bool = Field(description="a tiger among the detections")


class ClassifyResponse(BaseModel):
    """``POST /v1/classify``."""

    model: str
    mode: ClassifyMode
    images: list[ClassifiedImage]


class ModelInfo(BaseModel):
    """The loaded classifier."""

    name: str
    version: str
    backend: str | None
    precision: str | None = Field(description="what the backend computes in: f32 or bf16")
    input_size: int
    crop_method: str
    snip_size: int
    classes: list[str] = Field(description="in the model's output order")
    tiger_class: str
    tiger_threshold: float | None
    metrics: dict[str, Any]


class ModelsResponse(BaseModel):
    """``GET /v1/models``: the loaded model (the list is empty when none is configured)."""

    models: list[ModelInfo]


class PromoteRequest(BaseModel):
    """``POST /v1/models/promote``: make a bundle the served model (never done automatically)."""

    candidate: str = Field(description="the bundle folder, relative to the data root (e.g. "
                                       "runs/retrain-1/bundle)")
    model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                              description="the served bundle's name under models/classifiers/ "
                                          "(default: this server's MODEL)")


class PromoteResponse(BaseModel):
    """What the promotion did; the server keeps its loaded model until it restarts."""

    served: str
    replaced: str | None
    candidate: str
    bundle: str
    promoted_at: str
    note: str


class ReviewJobRequest(BaseModel):
    """``POST /v1/reviews/jobs``: bring a classify job's results into the review store."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                      description="the review job's name, e.g. the classify job id")
    md_file: str = Field(description="the classified MD file, relative to the data root")
    image_base: str | None = Field(default=None, description="folder the MD file's image "
                                   "paths are relative to (default: the MD file's folder)")
    tiger_class: str = "tiger"


class ReviewJobSummary(BaseModel):
    """A review job and how far its review has come."""

    name: str
    classes: list[str] = Field(description="the class map, in the model's output order")
    tiger_class: str
    detections: int
    progress: dict[str, Any]


class ReviewQueueItem(BaseModel):
    id: int
    section: Literal["tiger", "uncertain", "qc"]
    reviewed: bool


class ReviewQueue(BaseModel):
    """``GET /v1/reviews/jobs/{job}/queue``: the detections to look at, in order."""

    job: str
    classes: list[str]
    labels: list[str] = Field(description="every verdict label: the classes, then "
                                          "not_an_animal and unsure")
    order: Literal["margin", "entropy"]
    sections: dict[str, dict[str, int]] = Field(
        description="per section (tiger, uncertain, qc): total and reviewed")
    progress: dict[str, Any]
    items: list[ReviewQueueItem]


class VerdictRequest(BaseModel):
    """``POST /v1/reviews/detections/{id}/verdicts``."""

    label: str | None = Field(description="a class of the job, not_an_animal or unsure; null "
                                          "withdraws your previous verdict (undo)")
    reviewer: str = Field(min_length=1, max_length=100, description="who gives the verdict")


class VerdictRecord(BaseModel):
    id: int
    detection_id: int
    label: str | None
    reviewer: str
    created_at: str


class ReviewDetection(BaseModel):
    """One classified detection with the model's answer and people's verdicts."""

    id: int
    job: str
    file: str
    detection_index: int
    bbox: list[float] = Field(description="[x_min, y_min, width, height], normalised")
    conf: float
    top_k: list[tuple[str, float]]
    tiger_score: float | None
    tiger_flag: bool
    margin: float
    entropy: float
    location: str
    classes: list[str]
    current: list[VerdictRecord] = Field(description="each reviewer's latest verdict")
    conflict: bool = Field(description="current verdicts name different labels")
    agreed: str | None
    history: list[VerdictRecord] = Field(description="every verdict, oldest first")
