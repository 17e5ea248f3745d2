"""The train stage as the job system runs it (see ``tigertrap.core.stages``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tigertrap.core.queue import ProgressFn
from tigertrap.train.config import CLASSIFIERS_DIR, TrainSettings

__all__ = ["run"]


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
