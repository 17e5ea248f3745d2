"""Settings of the snip stage, with mewc-snip's key names (``INPUT_DIR``, ``MD_FILE``, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from tigertrap.core.config import StageSettings
from tigertrap.core.crops import DEFAULT_SNIP_SIZE
from tigertrap.core.md_results import DEFAULT_DETECTION_CATEGORIES

__all__ = ["SnipSettings"]

_CATEGORY_IDS = {name: cid for cid, name in DEFAULT_DETECTION_CATEGORIES.items()}


class SnipSettings(StageSettings):
    """Where the detections are, which to crop, and how."""

    input_dir: Path = Field(Path("."), description="folder holding the images and the MD file")
    md_file: str = Field("md.json", description="MD batch output, relative to INPUT_DIR")
    snip_dir: str = Field("snips", description="output folder, relative to INPUT_DIR")
    lower_conf: float = Field(0.05, ge=0.0, le=1.0, description="lowest detection conf cropped")
    snip_size: int = Field(DEFAULT_SNIP_SIZE, ge=8, le=4096, description="crop side, pixels")
    crop_method: Literal["exact", "square"] = "exact"
    categories: list[str] = Field(default_factory=lambda: ["animal"],
                                  description="detection categories to crop (names or ids)")
    max_crops: int | None = Field(None, ge=1, description="at most this many crops per image")
    max_crops_by_class: dict[str, int] = Field(
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
    def _category_ids(cls, value: list[str]) -> list[str]:
        ids = []
        for item in value:
            cid = _CATEGORY_IDS.get(item.lower(), item)
            if cid not in DEFAULT_DETECTION_CATEGORIES:
                raise ValueError(f"unknown category {item!r}; use animal, person, vehicle "
                                 "or 1, 2, 3")
            ids.append(cid)
        return ids

    @property
    def md_path(self) -> Path:
        return self.input_dir / self.md_file

    @property
    def snips_path(self) -> Path:
        return self.input_dir / self.snip_dir
