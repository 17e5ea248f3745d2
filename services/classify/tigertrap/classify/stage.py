"""The classify stage as the job system runs it (see ``tigertrap.core.stages``): whole, or in
shards.

A shard is a slice of the MD file's images, written as a hidden subset MD file beside it (so
every image's relative path holds); it is classified into hidden shard outputs in the output
folder, without the tiger alert. :func:`merge` writes ``md_classified.json`` (images in order,
the fingerprint of the whole input, so a re-run knows it is complete), the predictions, images
and long tables, and then sends the tiger alert once for the job.

The same module runs repeat-detection elimination (:func:`run_rde`) and the Camtrap DP export
(:func:`run_export`) as job stages on classify's queue.

Sequence smoothing looks across images, so a job with a sequence source (``SEQUENCE_SOURCE``
other than ``none``) is not split: its sequences could straddle two shards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tigertrap.classify.camtrap_dp import CamtrapDPSettings
from tigertrap.classify.config import ClassifySettings
from tigertrap.classify.rde import RepeatDetectionSettings
from tigertrap.core.bundle import load_manifest
from tigertrap.core.md_results import now_timestamp, write_md_results
from tigertrap.core.queue import ProgressFn
from tigertrap.core.shards import (
    merge_csv,
    merge_md_shards,
    remove_files,
    shard_path,
    split_md_results,
)

__all__ = ["RdeJobSettings", "merge", "run", "run_export", "run_rde", "run_shard", "split"]

SUBSET_SUFFIX = ".classify.json"


def run(settings: ClassifySettings, progress: ProgressFn, image_root: Path) -> dict[str, Any]:
    """Classify the job's MD file; images it names outside ``image_root`` are failures."""
    from tigertrap.classify.batch import classify_md

    return classify_md(settings, progress=progress, image_root=image_root).as_dict()


def split(settings: ClassifySettings, shard_size: int,
          image_root: Path) -> list[dict[str, Any]]:
    """Subset MD files of at most ``shard_size`` images (none: run whole; always whole with
    sequence smoothing)."""
    if settings.md_file is None or settings.sequence_source != "none":
        return []
    return split_md_results(settings.md_file, shard_size, suffix=SUBSET_SUFFIX)


def _outputs(settings: ClassifySettings, index: int, count: int) -> dict[str, str]:
    from tigertrap.classify.batch import _paths

    assert settings.md_file is not None
    whole = _paths(settings, settings.md_file)
    names = {"output_md": whole.md_file, "pred_csv": whole.predictions_csv,
             "images_csv": whole.images_csv, "long_csv": whole.long_csv}
    return {key: shard_path(path, index, count).name for key, path in names.items()
            if path is not None}


def run_shard(settings: ClassifySettings, shard: dict[str, Any], progress: ProgressFn,
              image_root: Path) -> dict[str, Any]:
    """Classify one shard's images into its own hidden outputs (no tiger alert here)."""
    from tigertrap.classify.batch import classify_md

    assert settings.md_file is not None
    out_dir = settings.output_dir or settings.md_file.parent
    subset = settings.model_copy(update={
        "md_file": settings.md_file.parent / str(shard["md_file"]), "output_dir": out_dir,
        "tiger_webhook": None, **_outputs(settings, int(shard["index"]), int(shard["of"]))})
    return classify_md(subset, progress=progress, image_root=image_root).as_dict()


def merge(settings: ClassifySettings, shards: list[dict[str, Any]],
          image_root: Path) -> dict[str, Any]:
    """The stage's outputs from the shards' outputs, then the tiger alert; shard files go."""
    from tigertrap.classify.batch import _fingerprint, _paths, _tiger_alert

    assert settings.md_file is not None and settings.model is not None
    result = _paths(settings, settings.md_file)
    out_dir = result.md_file.parent
    parts = [{key: out_dir / name for key, name in
              _outputs(settings, int(s["index"]), int(s["of"])).items()} for s in shards]
    # Tables first, the MD file last: its fingerprint marks the whole set complete.
    merge_csv([p["pred_csv"] for p in parts], result.predictions_csv)
    merge_csv([p["images_csv"] for p in parts], result.images_csv)
    if result.long_csv is not None:
        merge_csv([p["long_csv"] for p in parts], result.long_csv)
    merged = merge_md_shards([p["output_md"] for p in parts])
    metadata = dict(merged.info.get("classifier_metadata", {}))
    metadata["fingerprint"] = _fingerprint(settings.md_file, load_manifest(settings.model),
                                           settings)
    merged.info["classifier_metadata"] = metadata
    merged.info["classification_completion_time"] = now_timestamp()
    write_md_results(merged, result.md_file)
    subsets = [settings.md_file.parent / str(shard["md_file"]) for shard in shards]
    remove_files([*subsets, *(path for part in parts for path in part.values())])
    result.images = len(merged.images)
    result.classified = sum(len([d for d in entry.detections or [] if d.classifications])
                            for entry in merged.images)
    result.failures = sum(entry.failed for entry in merged.images)
    result.tiger_alert = _tiger_alert(result.md_file, settings)
    return result.as_dict()


class RdeJobSettings(RepeatDetectionSettings):
    """Repeat-detection elimination as a job: ``find`` writes the review folder; ``remove``
    writes ``OUTPUT_MD`` without the repeats whose example is still in ``REVIEW_DIR`` after a
    person's review (default: the folder ``find`` wrote), or every repeat with ``ACCEPT_ALL``
    (the one unattended mode: a job of ``find`` then ``remove`` with ``ACCEPT_ALL``)."""

    mode: Literal["find", "remove", "find-remove"] = Field(
        default="find", description="find; remove after review; find-remove needs ACCEPT_ALL")
    review_dir: Path | None = Field(default=None, description="the reviewed folder (remove)")
    accept_all: bool = Field(default=False, description="remove every suspicious detection")


def run_rde(settings: RdeJobSettings, progress: ProgressFn, image_root: Path) -> dict[str, Any]:
    """Find and/or remove repeated detections; the result names the review folder and the
    cleaned MD file (relative to the data root)."""
    from tigertrap.classify.rde import find_repeats, remove_repeats

    if settings.md_file is None:
        raise ValueError("give MD_FILE (the MegaDetector file to clean)")
    if settings.mode == "find-remove" and not settings.accept_all:
        raise ValueError("MODE=find-remove removes without a review: set ACCEPT_ALL=true, or "
                         "run MODE=find, review the folder, then MODE=remove")
    progress(0, 1)
    result: dict[str, Any] = {}
    review_dir = settings.review_dir
    if settings.mode in ("find", "find-remove"):
        review = find_repeats(settings)
        review_dir = review.review_dir
        result.update({"review_dir": str(review.review_dir),
                       "suspicious_csv": str(review.suspicious_csv),
                       "suspicious": review.suspicious, "occurrences": review.occurrences})
    if settings.mode in ("remove", "find-remove"):
        review_dir = review_dir or (settings.output_dir or settings.md_file.parent / "rde")
        output = settings.md_file.parent / settings.output_md
        removal = remove_repeats(settings.md_file, review_dir, output,
                                 accept_all=settings.accept_all)
        result.update(removal.as_dict())
    progress(1, 1)
    return result


def run_export(settings: CamtrapDPSettings, progress: ProgressFn,
               image_root: Path) -> dict[str, Any]:
    """Write the Camtrap DP 1.0 package of a classified MD file (validated before it is put
    in place); the result names the package folder (relative to the data root)."""
    from tigertrap.classify.camtrap_dp import export_camtrap_dp

    progress(0, 1)
    exported = export_camtrap_dp(settings).as_dict()
    progress(1, 1)
    return exported
