"""The publish stage as the job system runs it (see ``tigertrap.core.stages``): the last step of
the model-building pipeline.

``TARGET=hf`` writes the Hugging Face folder (model card, bundle, AddaxAI folders) and uploads
it to ``REPO_ID`` unless ``DRY_RUN`` (the job default: a model is published on purpose, by
setting ``DRY_RUN=false``, ``REPO_ID`` and ``HF_TOKEN``); ``TARGET=addaxai`` writes AddaxAI's
v6 and v7 model folders. The folder goes to ``OUTPUT_DIR`` (default
``<bundle>-publish/`` beside the bundle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tigertrap.core.queue import ProgressFn
from tigertrap.publish.config import PublishSettings

__all__ = ["PublishJobSettings", "run"]


class PublishJobSettings(PublishSettings):
    """The publish keys plus what a job names: the bundle, the target and the folder."""

    bundle: Path | None = Field(default=None, description="classifier bundle folder")
    target: Literal["hf", "addaxai"] = "hf"
    output_dir: Path | None = Field(default=None, description="default: <bundle>-publish/")
    dry_run: bool = Field(default=True, description="hf: write the folder, upload nothing")


def run(settings: PublishJobSettings, progress: ProgressFn, image_root: Path) -> dict[str, Any]:
    """Publish the job's bundle; returns the folder written and, after an upload, the commit."""
    from tigertrap.publish.publish import ADDAXAI_LAYOUTS, build_addaxai, publish_to_hub

    if settings.bundle is None:
        raise ValueError("give BUNDLE (a classifier bundle folder), or run publish after train")
    out = settings.output_dir or settings.bundle.with_name(settings.bundle.name + "-publish")
    progress(0, 1)
    if settings.target == "addaxai":
        published = build_addaxai(settings.bundle, out, settings, layouts=ADDAXAI_LAYOUTS)
    else:
        published = publish_to_hub(settings.bundle, settings,
                                   dry_run_dir=out if settings.dry_run else None)
    progress(1, 1)
    return {"folder": str(published.folder) if published.folder else None,
            "target": settings.target, "dry_run": settings.dry_run,
            "repo_id": settings.repo_id, "commit_url": published.commit_url,
            "files": len(published.files)}
