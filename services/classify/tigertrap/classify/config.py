"""Settings of the classify stage (MEWC-style keys; see ``services/classify/classify.env``).

``MD_FILE`` and ``MODEL`` name the inputs; the output files go next to ``MD_FILE`` unless
``OUTPUT_DIR`` says otherwise. The engine keys (``BACKEND``, ``BATCH_SIZE``, ``MAX_WAIT_MS``,
``MAX_QUEUE``, ``THREADS``, ``PRECISION``) are shared by batch mode and the HTTP server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from tigertrap.core.config import StageSettings

__all__ = ["SEQUENCE_SOURCES", "ClassifySettings", "EngineSettings"]

SEQUENCE_SOURCES = ("none", "manifest", "exif")


class EngineSettings(StageSettings):
    """What batch classification and the HTTP API share: the engine and how results read."""

    # what is classified and how results are reported
    lower_conf: float = Field(default=0.05, ge=0.0, le=1.0,
                              description="classify animal detections at or above this conf")
    top_k: int = Field(default=5, ge=1, description="classifications kept per detection")
    tiger_class: str = Field(default="tiger", description="class name that sets the tiger flag")
    tiger_threshold: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="tiger score that sets the tiger flag; default: the bundle's, else "
                    "the top class")

    # the inference engine
    backend: Literal["auto", "onnx", "openvino", "keras"] = Field(
        default="auto", description="auto: onnx, else keras")
    precision: Literal["f32", "bf16"] = Field(default="f32",
                                              description="bf16 only with backend openvino")
    batch_size: int = Field(default=32, ge=1, description="largest inference batch")
    max_wait_ms: float = Field(default=5.0, ge=0, description="dynamic batching wait")
    max_queue: int = Field(default=1024, ge=1, description="crops waiting at most")
    threads: int | None = Field(default=None, ge=1, description="inference threads")


class ClassifySettings(EngineSettings):
    """Every key of the classify stage, with its default."""

    # inputs and outputs
    md_file: Path | None = Field(default=None, description="MegaDetector batch output to classify")
    model: Path | None = Field(default=None, description="classifier bundle folder")
    output_dir: Path | None = Field(default=None, description="default: the MD file's folder")
    output_md: str = Field(default="md_classified.json", description="classified MD file name")
    pred_csv: str = Field(default="predictions.csv", description="one row per detection")
    images_csv: str = Field(default="images.csv", description="one row per image")
    long_table: bool = Field(default=False, description="also write mewc-predict's long table")
    long_csv: str = Field(default="predictions_long.csv", description="long table file name")

    # sequence smoothing
    sequence_source: Literal["none", "manifest", "exif"] = "none"
    sequence_file: Path | None = Field(default=None,
                                       description="CSV with path and sequence columns")
    sequence_gap: float = Field(default=30.0, gt=0,
                                description="max seconds between frames of one EXIF sequence")
    # MegaDetector's classification smoothing (classification_postprocessing), within images
    # and then within sequences; the names in brackets are its ClassificationSmoothingOptions.
    image_smoothing: bool = Field(default=False,
                                  description="also smooth classes within each image")
    smooth_min_dominant: int = Field(
        default=4, description="detections of the dominant class needed to relabel others "
                               "[min_detections_to_overwrite_secondary]")
    smooth_max_nondominant: int = Field(
        default=1, description="a class with more detections than this is never relabelled "
                               "[max_detections_nondominant_class]")
    smooth_min_dominant_over_other: int = Field(
        default=2, description="detections of the dominant class needed to relabel 'other' "
                               "classes [min_detections_to_overwrite_other]")
    smooth_other_classes: str = Field(
        default="other,unknown,no cv result,animal,blank,mammal",
        description="comma-separated class names treated as 'other' [other_category_names]")
    smooth_classification_threshold: float = Field(
        default=0.5, ge=0.0, le=1.0, description="top scores below this take no part "
                                                 "[classification_confidence_threshold]")
    smooth_detection_threshold: float = Field(
        default=0.15, ge=0.0, le=1.0, description="detections below this conf take no part "
                                                  "[detection_confidence_threshold]")
    decode_workers: int = Field(default=2, ge=1, description="image decoding threads")

    # the tiger alert (tigertrap.classify.tiger_alert): batch mode only
    tiger_webhook: str | None = Field(
        default=None, pattern=r"^https?://",
        description="URL POSTed once per batch with the tiger-flagged frames")
    tiger_webhook_retries: int = Field(default=3, ge=0, description="retries after a failure")
    tiger_webhook_backoff: float = Field(default=1.0, ge=0,
                                         description="first retry wait, doubling, seconds")
    tiger_webhook_timeout: float = Field(default=10.0, gt=0, description="per call, seconds")
