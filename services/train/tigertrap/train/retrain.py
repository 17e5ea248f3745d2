"""Retrain and compare: a previous bundle, retrained on the merged training set, then both
evaluated on the same test sets.

:func:`retrain_and_compare` checks that the settings fit the previous bundle (same classes in
the same order; its backbone and input size unless MODEL / INPUT_SIZE say otherwise), trains
with :func:`tigertrap.train.training.train` starting from the previous bundle's weights
(:mod:`.warm_start`; the backbone's own WEIGHTS are not downloaded), and writes the comparison
(:mod:`.compare`) of the previous and the new bundle on ``test``, ``test2`` and the reviewed
frames held out (``review``, from ``tigertrap review export``) to
``<OUTPUT_PATH>/comparison/``. The new bundle goes to ``BUNDLE_PATH`` (default
``<OUTPUT_PATH>/bundle``), never over the served one: promotion is a separate, explicit step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tigertrap.core.bundle import verify_bundle
from tigertrap.core.config import ConfigError
from tigertrap.core.queue import ProgressFn
from tigertrap.train import data as datasets
from tigertrap.train.compare import compare_bundles
from tigertrap.train.config import TrainSettings
from tigertrap.train.training import TrainResult, resolve_class_map, train

__all__ = [
    "COMPARED_SPLITS",
    "COMPARISON_DIR",
    "RetrainResult",
    "retrain_and_compare",
    "retrain_settings",
]

COMPARISON_DIR = "comparison"
#: The splits both bundles are evaluated on (``review``: reviewed frames held out).
COMPARED_SPLITS = ("test", "test2", "review")


@dataclass(frozen=True)
class RetrainResult:
    """The training result of the new bundle and the comparison report."""

    trained: TrainResult
    comparison_dir: Path
    comparison: dict[str, Any]


def retrain_settings(settings: TrainSettings, previous: Path) -> TrainSettings:
    """``settings`` completed from the previous bundle: its backbone and input size when not
    given, no backbone weights download, and the new bundle inside the run folder by default.

    Raises:
        ConfigError: the class map differs from the previous bundle's, or BUNDLE_PATH is the
            previous bundle's folder.
    """
    manifest, class_map = verify_bundle(previous)
    given = settings.model_fields_set
    update: dict[str, Any] = {"weights": "none"}
    if "model" not in given and manifest.backbone:
        update["model"] = manifest.backbone
    if settings.input_size is None:
        update["input_size"] = manifest.input_size
    if settings.bundle_path is None:
        update["bundle_path"] = settings.output_path / "bundle"
    completed = settings.model_copy(update=update)
    classes = list(resolve_class_map(completed).names)
    if classes != list(class_map.names):
        raise ConfigError("CLASS_MAP", f"the classes {classes} differ from the previous "
                                       f"bundle's {list(class_map.names)}; retraining keeps "
                                       "the class map (export with the same classes)")
    if Path(completed.bundle_path).resolve() == Path(previous).resolve():
        raise ConfigError("BUNDLE_PATH", "is the previous bundle's folder; the new bundle goes "
                                         "elsewhere and is promoted explicitly")
    return completed


def _compared_splits(settings: TrainSettings, class_map: Any) -> dict[str, Any]:
    if settings.snips_csv is not None:
        return datasets.read_snips_csv(settings.snips_csv, class_map, COMPARED_SPLITS)
    assert settings.data_dir is not None
    return {split: images for split, images in
            datasets.read_folders(settings.data_dir, class_map).items()
            if split in COMPARED_SPLITS}


def retrain_and_compare(settings: TrainSettings, previous: Path, *,
                        progress: ProgressFn | None = None,
                        image_root: Path | None = None) -> RetrainResult:
    """Retrain from ``previous`` as ``settings`` say, then compare the two bundles.

    Raises: what :func:`retrain_settings` and :func:`tigertrap.train.training.train` raise.
    """
    settings = retrain_settings(settings, previous)
    trained = train(settings, progress=progress, image_root=image_root, init_bundle=previous)
    class_map = resolve_class_map(settings)
    splits, _ = datasets.drop_unreadable(_compared_splits(settings, class_map),
                                         image_root=image_root)
    out = settings.output_path / COMPARISON_DIR
    report = compare_bundles(previous, trained.bundle_dir, splits, out,
                             tiger_class=settings.tiger_class)
    return RetrainResult(trained, out, report)
