"""Settings of the snip stage, with mewc-snip's key names (``INPUT_DIR``, ``MD_FILE``, ...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from tigertrap.core.config import StageSettings
from tigertrap.core.crops import DEFAULT_SNIP_SIZE
from tigertrap.core.detections import category_names

__all__ = ["SnipSettings"]


class SnipSettings(StageSettings):
    """Where the detections are, which to crop, and how."""

    input_dir: Path = Field(Path("."), description="folder holding the images and the MD file")
    md_file: str = Field("md.json", description="MD batch output, relative to INPUT_DIR")
    snip_dir: str = Field("snips", description="output folder, relative to INPUT_DIR")
    lower_conf: float = Field(0.05, ge=0.0, le=1.0, description="lowest detection conf cropped")
    snip_size: int = Field(DEFAULT_SNIP_SIZE, ge=8, le=4096, description="crop side, pixels")
    crop_method: Literal["exact", "square"] = "exact"
    # NoDecode: the environment gives "animal,person", not JSON.
    categories: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["animal"],
                                  description="detection categories to crop: names matched "
                                              "against the MD file's detection_categories "
                                              "(MegaDetector's ids 1, 2, 3 accepted)")
    max_crops: int | None = Field(None, ge=1, description="at most this many crops per image")
    # NoDecode: the validator below reads both JSON and tiger=10,deer=2 from the environment.
    max_crops_by_class: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict, description="per class label (from a manifest) overrides")
    jpeg_quality: int = Field(95, ge=1, le=100)
    manifest: Path | None = Field(None, description="download manifest.csv (default: found "
                                                    "beside the MD file or above it)")
    by_class: bool = Field(False, description="also lay snips out as <split>/<class>/")
    by_class_dir: str = Field("by_class", description="folder for --by-class, under SNIP_DIR")
    draft: bool = Field(True, description="decode large JPEGs at reduced scale when possible")
    workers: int | None = Field(None, ge=1, description="processes (default: CPU count)")

    @field_validator("categories", mode="before")
    @classmethod
    def _split_text(cls, value: object) -> object:
        return [part.strip() for part in value.split(",") if part.strip()] \
            if isinstance(value, str) else value

    @field_validator("categories")
    @classmethod
    def _category_names(cls, value: list[str]) -> list[str]:
        return category_names(value)

    @field_validator("max_crops_by_class", mode="before")
    @classmethod
    def _parse_pairs(cls, value: object) -> object:
        """``"tiger=10,deer=2"`` (a CLI option) as well as a mapping or JSON."""
        if not isinstance(value, str):
            return value
        if value.lstrip().startswith("{"):
            return json.loads(value)  # a JSON error is reported as a ValueError on the key
        pairs = [part.split("=", 1) for part in value.split(",") if part.strip()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError("write class=count pairs separated by commas, e.g. tiger=10,deer=2")
        return {name.strip(): count.strip() for name, count in pairs}

    @property
    def md_path(self) -> Path:
        return self.input_dir / self.md_file

    @property
    def snips_path(self) -> Path:
        return self.input_dir / self.snip_dir
