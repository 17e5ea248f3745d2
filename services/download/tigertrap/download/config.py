"""Settings of the download stage (MEWC style: code defaults < YAML < env file < environment <
CLI options or job parameters). Keys are the upper-case field names, e.g. ``CLASS_SAMPLES_DEFAULT``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from tigertrap.core.config import StageSettings

__all__ = ["MIRROR_COLUMNS", "DownloadSettings"]

#: LILA's mirror columns, in the default order of preference.
MIRROR_COLUMNS = ("url_gcp", "url_aws", "url_azure")
_FRACTION_TOLERANCE = 1e-6


class DownloadSettings(StageSettings):
    """Every key of the download stage; see ``services/download/README.md``."""

    metadata: str | None = Field(
        default=None, description="LILA metadata CSV or its zip (lila_image_urls_and_labels)")
    class_spec: str | None = Field(default=None, description="class spec YAML; default: Nepal")
    dataset_name: str = Field(default="nepal", description="writes datasets/<name>/")
    class_samples_default: int = Field(default=4000, ge=0,
                                       description="images per class unless the spec says")
    seed: int = 12345
    split_by: Literal["location", "sequence"] = "location"
    train_fraction: float = Field(default=0.8, ge=0, le=1)
    val_fraction: float = Field(default=0.1, ge=0, le=1)
    test_fraction: float = Field(default=0.1, ge=0, le=1)
    concurrency: int = Field(default=16, ge=1, le=256)
    retries: int = Field(default=3, ge=0)
    backoff: float = Field(default=1.0, ge=0, description="seconds before the first retry")
    timeout: float = Field(default=30.0, gt=0, description="seconds per connect/read")
    rate_limit: float = Field(default=0.0, ge=0, description="requests per second, 0 = none")
    mirrors: str = Field(default=",".join(MIRROR_COLUMNS),
                         description="mirror columns in order of preference")
    verify: Literal["size", "hash"] = "size"
    local_root: str | None = Field(default=None,
                                   description="folder holding LILA images already on disk")
    md_results: dict[str, str] = Field(
        default_factory=dict, description="LILA dataset name -> published MD results file")
    cvwc_source: str | None = Field(default=None, description="CVWC2019 zip, tar.gz or folder")
    cvwc_class: str = "tiger"
    dry_run: bool = False

    @field_validator("mirrors")
    @classmethod
    def _known_mirrors(cls, value: str) -> str:
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        columns = [name if name.startswith("url_") else f"url_{name}" for name in names]
        unknown = [name for name in columns if name not in MIRROR_COLUMNS]
        if unknown or not columns:
            raise ValueError(f"mirrors must be a comma-separated list of gcp, aws, azure; got "
                             f"{value!r}")
        return ",".join(columns)

    @model_validator(mode="after")
    def _fractions_add_up(self) -> DownloadSettings:
        total = self.train_fraction + self.val_fraction + self.test_fraction
        if abs(total - 1.0) > _FRACTION_TOLERANCE:
            raise ValueError(f"TRAIN_FRACTION + VAL_FRACTION + TEST_FRACTION must be 1, "
                             f"got {total:g}")
        return self

    @property
    def mirror_columns(self) -> list[str]:
        return self.mirrors.split(",")

    @property
    def fractions(self) -> dict[str, float]:
        return {"train": self.train_fraction, "val": self.val_fraction,
                "test": self.test_fraction}
