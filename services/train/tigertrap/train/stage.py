"""The train and retrain stages as the job system runs them (see ``tigertrap.core.stages``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from tigertrap.core.queue import ProgressFn
from tigertrap.train.config import CLASSIFIERS_DIR, TrainSettings

__all__ = ["RetrainJobSettings", "run", "run_retrain"]


def run(settings: TrainSettings, progress: ProgressFn, image_root: Path) -> dict[str, Any]:
    """Train, evaluate and export; resumes a redelivered job. ``BUNDLE_PATH`` defaults to
    ``models/classifiers/<SAVEFILE>`` under the data root; images outside it are left out."""
    from tigertrap.train.training import train

    if settings.bundle_path is None:
        settings = settings.model_copy(
            update={"bundle_path": image_root / CLASSIFIERS_DIR / settings.savefile})
    result = train(settings, progress=progress, image_root=image_root)
    return {"run_dir": str(result.run_dir), "bundle_dir": str(result.bundle_dir),
            "epochs": result.epochs, "metrics": result.metrics}


class RetrainJobSettings(TrainSettings):
    """Retraining as a job: the train keys plus the bundle to start from."""

    previous_bundle: Path | None = Field(
        default=None, description="the bundle whose weights the new one starts from")


def run_retrain(settings: RetrainJobSettings, progress: ProgressFn,
                image_root: Path) -> dict[str, Any]:
    """Retrain from ``PREVIOUS_BUNDLE`` on the job's (merged, reviewed) set, then compare the
    old and new bundles on the same test sets. The new bundle is never promoted here."""
    from tigertrap.train.retrain import retrain_and_compare

    if settings.previous_bundle is None:
        raise ValueError("give PREVIOUS_BUNDLE: the bundle folder to retrain from")
    previous = settings.previous_bundle
    plain = TrainSettings.model_validate(settings.model_dump(exclude={"previous_bundle"}))
    result = retrain_and_compare(plain, previous, progress=progress, image_root=image_root)
    return {"run_dir": str(result.trained.run_dir), "bundle_dir": str(result.trained.bundle_dir),
            "comparison_dir": str(result.comparison_dir), "epochs": result.trained.epochs,
            "previous_bundle": str(previous)}
