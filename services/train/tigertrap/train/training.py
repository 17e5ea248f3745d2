"""The train stage: labelled snips in, a trained, evaluated and exported classifier out.

:func:`train` runs the recipe epoch by epoch (:mod:`tigertrap.train.recipe`), re-sampling the
training images each epoch, validating on the val split only, keeping the best weights by the
val metric, then evaluates on ``test`` and ``test2`` and writes the bundle.

The run folder (``OUTPUT_PATH``) holds everything needed to resume: after each epoch the weights,
the optimiser state and ``state.json`` (epochs done, history, best metric, plateau and
early-stopping counters, wandb run id) are written atomically. Running again with the same
settings continues after the last finished epoch; a finished run with its bundle in place is not
redone. Every epoch's randomness (sampling, shuffling, augmentation, dropout) is derived from
``SEED`` and the epoch number, so a resumed run follows the same path as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field

from tigertrap.core.bundle import BundleError, verify_bundle
from tigertrap.core.class_map import CLASS_MAP_FILE, ClassMap
from tigertrap.core.config import ConfigError
from tigertrap.core.paths import atomic_write, atomic_write_json
from tigertrap.core.queue import ProgressFn
from tigertrap.core.snip_spec import CROP_KEYS, SnipSpec, find_snip_spec, reconcile_crop_settings
from tigertrap.train import data as datasets
from tigertrap.train.backbones import BackboneSpec, block_starts, build_backbone, resolve_backbone
from tigertrap.train.config import TrainSettings, apply_recipe, config_hash
from tigertrap.train.evaluate import (
    classification_report_csv,
    confusion_matrix_png,
    split_metrics,
    tiger_precision_recall,
    tiger_threshold,
)
from tigertrap.train.export import check_export, export_bundle
from tigertrap.train.model import (
    build_classifier,
    freeze_backbone,
    set_dropout,
    unfreeze_last_blocks,
)
from tigertrap.train.recipe import EpochPlan, make_loss, make_optimizer, plan_epochs
from tigertrap.train.tracking import TrainingLog

if TYPE_CHECKING:
    import keras

__all__ = ["RunState", "TrainError", "TrainResult", "resolve_class_map", "train"]

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
SETTINGS_FILE = "settings.json"
CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS = "best.weights.h5"
EVALUATION_DIR = "evaluation"
METRICS_FILE = "metrics.json"
#: Images left out because they do not decode (split, path, reason); only when there are any.
UNREADABLE_FILE = "unreadable_images.csv"
TEST_SPLITS = ("test", "test2")
#: The progress callback (and so job cancellation) is consulted every this many batches.
PROGRESS_EVERY_BATCHES = 25
#: A val loss must fall by more than this to count as better (Keras's ReduceLROnPlateau default).
MIN_DELTA = 1e-4


class TrainError(RuntimeError):
    """Training cannot start or continue as configured; the message says what to change."""


class RunState(BaseModel):
    """``state.json``: where an interrupted run resumes."""

    config_hash: str
    run_id: str
    epochs_done: int = 0
    checkpoint: str | None = None
    optimizer_phase: str | None = None
    history: list[dict[str, Any]] = Field(default_factory=list)
    best: float | None = None
    best_epoch: int | None = None
    learning_rate: float | None = None
    plateau_best: float | None = None
    plateau_wait: int = 0
    stop_best: float | None = None
    stop_wait: int = 0
    stopped_early: bool = False
    finished: bool = False


@dataclass(frozen=True)
class TrainResult:
    """Where the run and its bundle are, and what they scored."""

    run_dir: Path
    bundle_dir: Path
    metrics: dict[str, Any]
    epochs: int
    resumed_from: int


def resolve_class_map(settings: TrainSettings) -> ClassMap:
    """The explicit class order: ``CLASSES``, ``CLASS_MAP`` or ``<DATA_DIR>/class_map.yaml``."""
    if settings.classes:
        return ClassMap(settings.classes)
    candidates = [settings.class_map] if settings.class_map else []
    for folder in (settings.data_dir, settings.snips_csv.parent if settings.snips_csv else None):
        if folder is not None:
            candidates.append(folder / CLASS_MAP_FILE)
    for path in candidates:
        if path is not None and path.is_file():
            return ClassMap.load(path)
    raise ConfigError("CLASS_MAP", "the class order must be explicit: give CLASS_MAP (a "
                                   "class_map.yaml), CLASSES, or put class_map.yaml in DATA_DIR")


def crop_settings(settings: TrainSettings) -> tuple[TrainSettings, SnipSpec | None]:
    """``settings`` with the crop the snips were cut with, and snip's record of it.

    The record is ``snips.json`` in the ``SNIPS_CSV``'s folder or else in ``DATA_DIR``
    (:mod:`tigertrap.core.snip_spec`); without one, ``settings`` are returned unchanged.

    Raises:
        ConfigError: ``SNIP_SIZE`` or ``CROP_METHOD`` set to another value than the snips were
            cut with (the message names the key); ``SnipSpecError`` for an unreadable record.
    """
    found = find_snip_spec(settings.snips_csv.parent if settings.snips_csv is not None
                           else settings.data_dir)
    if found is None:
        return settings, None
    path, spec = found
    update = reconcile_crop_settings(spec, path, {key: getattr(settings, key) for key in CROP_KEYS},
                                     settings.model_fields_set)
    return settings.model_copy(update=update), spec


def load_splits(settings: TrainSettings, class_map: ClassMap, image_root: Path | None = None
                ) -> dict[str, datasets.LabelledImages]:
    """The labelled splits; train and val must exist and hold images. With ``image_root`` (a
    job's data root), images outside it are left out as unreadable, never opened."""
    if settings.snips_csv is not None:
        if not settings.snips_csv.is_file():
            raise ConfigError("SNIPS_CSV", f"{settings.snips_csv} does not exist")
        splits = datasets.read_snips_csv(settings.snips_csv, class_map)
    elif settings.data_dir is not None:
        if not settings.data_dir.is_dir():
            raise ConfigError("DATA_DIR", f"{settings.data_dir} is not a folder")
        splits = datasets.read_folders(settings.data_dir, class_map)
    else:
        raise ConfigError("DATA_DIR", "give DATA_DIR (train/val/test folders) or SNIPS_CSV")
    splits, unreadable = datasets.drop_unreadable(splits, image_root=image_root)
    _record_unreadable(settings.output_path / UNREADABLE_FILE, unreadable)
    for required in ("train", "val"):
        if not len(splits.get(required, ())):
            raise TrainError(f"no {required} images found; the {required} split is required "
                             "(validation never falls back to the test split)")
    return splits


def _record_unreadable(path: Path, unreadable: list[datasets.Unreadable]) -> None:
    """Log the images left out and list them in ``path`` (removed when there are none)."""
    if not unreadable:
        path.unlink(missing_ok=True)
        return
    for item in unreadable:
        log.warning("left out of %s: %s (%s)", item.split, item.path, item.reason)
    with atomic_write(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split", "path", "reason"])
        writer.writerows((item.split, item.path, item.reason) for item in unreadable)


def _samples_per_class(settings: TrainSettings, class_map: ClassMap) -> dict[int, int]:
    unknown = sorted(set(settings.class_samples_specific) - set(class_map.names))
    if unknown:
        raise ConfigError("CLASS_SAMPLES_SPECIFIC", f"unknown classes {', '.join(unknown)}")
    return {index: settings.class_samples_specific.get(name, settings.class_samples_default)
            for index, name in enumerate(class_map.names)}


class _Run:
    """One training run: its settings, data, model and state."""

    def __init__(self, settings: TrainSettings, progress: ProgressFn | None,
                 image_root: Path | None = None, snips: SnipSpec | None = None) -> None:
        self.settings = settings
        #: How the training snips were cut (snip's ``snips.json``), for the bundle manifest.
        self.snips = snips
        self.progress = progress
        self.class_map = resolve_class_map(settings)
        self.splits = load_splits(settings, self.class_map, image_root)
        self.spec: BackboneSpec = resolve_backbone(settings.model, settings.input_size)
        self.samples = _samples_per_class(settings, self.class_map)
        self.plans = plan_epochs(settings)
        self.hash = config_hash(settings)
        self.run_dir = settings.output_path
        self.checkpoints = self.run_dir / CHECKPOINT_DIR
        self.bundle_dir = settings.bundle_path or self.run_dir / "bundle"
        self.steps_per_epoch = max(1, -(-sum(self.samples.values()) // settings.batch_size))
        self.state = self._load_state()
        self.resumed_from = self.state.epochs_done
        self.model: keras.Model | None = None
        self.optimizer: Any = None
        self.setup: tuple[str, int] | None = None
        #: A bundle whose weights the model starts from (retraining), else None.
        self.init_bundle: Path | None = None

    # --- state ---
    def _load_state(self) -> RunState:
        path = self.run_dir / STATE_FILE
        if not path.is_file():
            return RunState(config_hash=self.hash, run_id=uuid.uuid4().hex[:12])
        state = RunState.model_validate_json(path.read_text(encoding="utf-8"))
        if state.config_hash != self.hash:
            raise TrainError(f"{self.run_dir} holds a run with other settings (config hash "
                             f"{state.config_hash}, now {self.hash}); choose another "
                             "OUTPUT_PATH or delete that folder to start over")
        return state

    def save_state(self) -> None:
        atomic_write_json(self.run_dir / STATE_FILE, self.state.model_dump(mode="json"),
                          indent=1)

    # --- model ---
    def build_model(self) -> None:
        import keras

        keras.utils.set_random_seed(self.settings.seed)
        weights = self.settings.weights if self.state.epochs_done == 0 else None
        backbone = build_backbone(self.spec, weights)
        buf = self.settings.buf or 0
        if buf > 0 and buf > len(block_starts(backbone)):
            raise ConfigError("BUF", f"{buf} blocks asked for, {self.spec.kimm_name} has "
                                     f"{len(block_starts(backbone))}")
        dropouts = self.settings.dropouts or [0.0]
        self.model = build_classifier(backbone, len(self.class_map), head=self.settings.head
                                      or "mewc", dropout=dropouts[0], name=self.settings.savefile)
        if self.state.epochs_done == 0:
            check_export(self.model, self.spec.input_size)
        if self.state.epochs_done == 0 and self.init_bundle is not None:
            from tigertrap.train.warm_start import warm_start

            warm_start(self.model, self.init_bundle)
        if self.state.checkpoint:
            self.model.load_weights(self.checkpoints / self.state.checkpoint)

    def configure(self, plan: EpochPlan) -> None:
        """Freeze or unfreeze, set dropout, and (re)compile when the epoch's setup changes."""
        assert self.model is not None
        if plan.setup == self.setup:
            return
        if plan.phase == "frozen":
            freeze_backbone(self.model)
        else:
            unfreeze_last_blocks(self.model, self.settings.buf or 0)
        set_dropout(self.model, plan.dropout)
        new_phase = self.setup is None or self.setup[0] != plan.phase
        if new_phase:
            self.optimizer = make_optimizer(self.settings, self.steps_per_epoch)
        self.model.compile(optimizer=self.optimizer, loss=make_loss(self.settings),
                           metrics=["accuracy"], jit_compile=False)
        if new_phase:
            self.optimizer.build(self.model.trainable_variables)
            if self.state.optimizer_phase == plan.phase and self.state.checkpoint:
                self._load_optimizer()
            if self.state.learning_rate is not None and self.settings.lr_scheduler == "plateau":
                self.optimizer.learning_rate = self.state.learning_rate
        self.setup = plan.setup
        log.info("epoch %d: phase %s, stage %d, magnitude %.2f, dropout %.2f", plan.epoch + 1,
                 plan.phase, plan.stage + 1, plan.magnitude, plan.dropout)

    def _load_optimizer(self) -> None:
        path = self.checkpoints / f"{self.state.checkpoint}.optimizer.npz"
        with np.load(path) as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        variables = self.optimizer.variables
        if len(values) != len(variables):
            raise TrainError(f"{path}: optimiser state does not fit the model")
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)

    def save_checkpoint(self, epoch: int, phase: str) -> None:
        assert self.model is not None
        name = f"epoch-{epoch + 1:04d}.weights.h5"
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        _save_weights(self.model, self.checkpoints / name)
        arrays = [np.asarray(v.numpy()) for v in self.optimizer.variables]
        temporary = self.checkpoints / f".{name}.optimizer.partial.npz"
        np.savez(temporary, *arrays)
        os.replace(temporary, self.checkpoints / f"{name}.optimizer.npz")
        previous = self.state.checkpoint
        self.state.checkpoint, self.state.optimizer_phase = name, phase
        self.save_state()
        if previous and previous != name:
            for stale in (previous, f"{previous}.optimizer.npz"):
                with contextlib.suppress(FileNotFoundError):
                    (self.checkpoints / stale).unlink()

    # --- data ---
    def decoded(self, split: str) -> datasets.DecodedImages:
        """The split's decoded images: in memory, or streamed (through a cache file for
        ``CACHE=disk``); test splits are read once, uncached."""
        images = self.splits[split]
        size = self.spec.input_size
        if self.settings.cache == "memory" and split not in TEST_SPLITS:
            return datasets.InMemoryImages.load(images, size)
        cache = None
        if self.settings.cache == "disk" and split not in TEST_SPLITS:
            cache = self.run_dir / "cache" / f"{split}-{size}.tfcache"
            for stale in cache.parent.glob(f"{cache.name}*.lockfile"):
                stale.unlink()
        return datasets.decoded_dataset(images, size, cache)


def _save_weights(model: keras.Model, path: Path) -> None:
    temporary = path.with_name(f".{path.name.removesuffix('.weights.h5')}.partial.weights.h5")
    model.save_weights(temporary)
    os.replace(temporary, path)


def _reseed(model: keras.Model, seed: int) -> None:
    """Give every random layer (dropout) a state derived from ``seed`` (repeatable epochs)."""
    for offset, layer in enumerate(model._flatten_layers()):
        generator = getattr(layer, "seed_generator", None)
        if generator is not None:
            generator.state.assign(np.array([seed, offset], dtype=generator.state.dtype))


def _augmenter(settings: TrainSettings, magnitude: float, seed: int) -> Any:
    if magnitude <= 0 or settings.num_aug == 0:
        return None
    import keras

    return keras.layers.RandAugment(value_range=(0, 255), num_ops=settings.num_aug,
                                    factor=magnitude, seed=seed)


class _Progress:
    """A Keras callback passing batch progress to the job's progress function."""

    def __new__(cls, progress: ProgressFn, done: int, total: int) -> Any:
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
                if batch % PROGRESS_EVERY_BATCHES == 0:
                    progress(done, total)

        return Callback()


def _epoch_seed(settings: TrainSettings, epoch: int) -> int:
    return settings.seed * 1000 + epoch


def _run_epoch(run: _Run, plan: EpochPlan, train_decoded: Any, val: Any) -> dict[str, Any]:
    import keras

    settings = run.settings
    assert run.model is not None
    seed = _epoch_seed(settings, plan.epoch)
    keras.utils.set_random_seed(seed)
    _reseed(run.model, seed)
    counts = datasets.epoch_counts(run.splits["train"].labels, len(run.class_map), run.samples,
                                   seed)
    epoch_data = datasets.train_dataset(train_decoded, counts, num_classes=len(run.class_map),
                                        batch_size=settings.batch_size, seed=seed,
                                        augment=_augmenter(settings, plan.magnitude, seed))
    callbacks = [_Progress(run.progress, plan.epoch, len(run.plans))] if run.progress else []
    history = run.model.fit(epoch_data, validation_data=val, initial_epoch=plan.epoch,
                            epochs=plan.epoch + 1, verbose=2, callbacks=callbacks,
                            shuffle=False)
    row = {key: float(values[-1]) for key, values in history.history.items()}
    row.update(epoch=plan.epoch + 1, phase=plan.phase, stage=plan.stage + 1,
               magnitude=plan.magnitude, dropout=plan.dropout,
               learning_rate=float(np.asarray(run.optimizer.learning_rate)),
               images=int(counts.sum()))
    return row


def _better(value: float, best: float | None, lower: bool) -> bool:
    if best is None:
        return True
    return value < best - MIN_DELTA if lower else value > best + MIN_DELTA


def _after_epoch(run: _Run, row: dict[str, Any]) -> None:
    """Best checkpoint, plateau learning-rate cut and early-stopping counters."""
    state, settings = run.state, run.settings
    monitor = settings.checkpoint_monitor
    lower = monitor.endswith("loss")
    if _better(row[monitor], state.best, lower):
        state.best, state.best_epoch = row[monitor], row["epoch"]
        assert run.model is not None
        _save_weights(run.model, run.checkpoints / BEST_WEIGHTS)
    val_loss = row["val_loss"]
    if settings.lr_scheduler == "plateau":
        if _better(val_loss, state.plateau_best, True):
            state.plateau_best, state.plateau_wait = val_loss, 0
        else:
            state.plateau_wait += 1
            if state.plateau_wait >= settings.lr_patience:
                run.optimizer.learning_rate = row["learning_rate"] * settings.lr_factor
                state.plateau_wait = 0
        state.learning_rate = float(np.asarray(run.optimizer.learning_rate))
    if settings.early_stop_patience:
        if _better(val_loss, state.stop_best, True):
            state.stop_best, state.stop_wait = val_loss, 0
        else:
            state.stop_wait += 1
            state.stopped_early = state.stop_wait >= settings.early_stop_patience


def _fit(run: _Run, training_log: TrainingLog) -> None:
    train_decoded = run.decoded("train")
    val = datasets.eval_dataset(run.decoded("val"), num_classes=len(run.class_map),
                                batch_size=run.settings.batch_size)
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    for plan in run.plans[run.state.epochs_done:]:
        if run.state.stopped_early:
            break
        run.configure(plan)
        row = _run_epoch(run, plan, train_decoded, val)
        run.state.history.append(row)
        run.state.epochs_done = plan.epoch + 1
        _after_epoch(run, row)
        training_log.log_epoch(run.state.history)
        run.save_checkpoint(plan.epoch, plan.phase)
        if run.progress:
            run.progress(run.state.epochs_done, len(run.plans))


def _predict(run: _Run, split: str) -> np.ndarray:
    assert run.model is not None
    dataset = datasets.eval_dataset(run.decoded(split), num_classes=len(run.class_map),
                                    batch_size=run.settings.batch_size)
    return np.asarray(run.model.predict(dataset, verbose=0))


def _evaluate(run: _Run) -> tuple[dict[str, Any], dict[str, Path]]:
    out = run.run_dir / EVALUATION_DIR
    out.mkdir(parents=True, exist_ok=True)
    settings = run.settings
    metrics: dict[str, Any] = {"best_epoch": run.state.best_epoch,
                               "epochs": run.state.epochs_done,
                               "stopped_early": run.state.stopped_early}
    images: dict[str, Path] = {}
    probs = {"val": _predict(run, "val")}
    for split in TEST_SPLITS:
        if len(run.splits.get(split, ())):
            probs[split] = _predict(run, split)
    for split, split_probs in probs.items():
        truth = run.splits[split].labels
        predicted = split_probs.argmax(axis=1)
        if split == "val":
            metrics["val"] = {"accuracy": float(np.mean(predicted == truth)),
                              "images": len(truth)}
            continue
        report = classification_report_csv(truth, predicted, run.class_map,
                                           out / f"{split}_classification_report.csv")
        png = out / f"{split}_confusion_matrix.png"
        confusion_matrix_png(truth, predicted, run.class_map, png, f"{settings.savefile}: {split}")
        images[f"{split}_confusion_matrix"] = png
        metrics[split] = {**split_metrics(report), "images": len(truth)}
    metrics["tiger"] = _tiger_operating_point(run, probs)
    atomic_write_json(out / METRICS_FILE, metrics, indent=2)
    return metrics, images


def _tiger_operating_point(run: _Run, probs: dict[str, np.ndarray]) -> dict[str, Any] | None:
    settings = run.settings
    if settings.tiger_class not in run.class_map.names:
        return None
    index = run.class_map.index(settings.tiger_class)
    val_truth = run.splits["val"].labels == index
    threshold = tiger_threshold(probs["val"][:, index], val_truth, settings.tiger_recall)
    point: dict[str, Any] = {"class": settings.tiger_class,
                             "target_recall": settings.tiger_recall, "threshold": threshold}
    if threshold is None:
        return point
    for split, split_probs in probs.items():
        is_tiger = run.splits[split].labels == index
        point[split] = tiger_precision_recall(split_probs[:, index], is_tiger, threshold)
    return point


def _finished_result(run: _Run) -> TrainResult | None:
    if not run.state.finished:
        return None
    try:
        manifest, _ = verify_bundle(run.bundle_dir)
    except BundleError:
        return None
    if manifest.config_hash != run.hash:
        return None
    metrics = json.loads((run.run_dir / EVALUATION_DIR / METRICS_FILE).read_text("utf-8"))
    return TrainResult(run.run_dir, run.bundle_dir, metrics, run.state.epochs_done,
                       run.state.epochs_done)


def train(settings: TrainSettings, *, progress: ProgressFn | None = None,
          image_root: Path | None = None, init_bundle: Path | None = None) -> TrainResult:
    """Train, evaluate and export as ``settings`` say; resume an interrupted run.

    Paths in ``settings`` are used as given (resolve them against the data root first). With
    ``image_root`` (a job's data root), images found in DATA_DIR or named by SNIPS_CSV that lie
    outside it are left out (listed as unreadable), never opened. ``SNIP_SIZE`` and
    ``CROP_METHOD`` come from snip's ``snips.json`` beside the data when there is one
    (:func:`crop_settings`); the record goes into the bundle manifest as ``snips``.

    Raises:
        ConfigError: a setting that cannot work (unknown class, missing data, BUF too large,
            a SNIP_SIZE or CROP_METHOD other than the snips were cut with).
        ExportError: a backbone that cannot be exported to ONNX (checked before training).
        TrainError: missing train/val split, or a run folder holding other settings.
        tigertrap.train.backbones.BackboneError: weights that cannot be loaded.
        tigertrap.train.warm_start.WarmStartError: ``init_bundle`` (a previous bundle whose
            weights the first epoch starts from) does not fit the model being trained.
    """
    settings, snips = crop_settings(apply_recipe(settings))
    run = _Run(settings, progress, image_root, snips)
    run.init_bundle = init_bundle  # weights to start from (tigertrap.train.retrain)
    done = _finished_result(run)
    if done is not None:
        log.info("%s: already trained and exported to %s", run.run_dir, run.bundle_dir)
        return done
    run.run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(run.run_dir / SETTINGS_FILE, settings.model_dump(mode="json"), indent=2)
    with _deterministic_ops():
        return _train_run(run)


def _train_run(run: _Run) -> TrainResult:
    settings = run.settings
    run.build_model()
    training_log = TrainingLog(run.run_dir, mode=settings.wandb_mode,
                               project=settings.wandb_project, entity=settings.wandb_entity,
                               run_id=run.state.run_id, name=settings.savefile,
                               config=settings.model_dump(mode="json"))
    try:
        _fit(run, training_log)
        assert run.model is not None
        if (run.checkpoints / BEST_WEIGHTS).is_file():
            with warnings.catch_warnings():  # the file's optimiser state is not wanted here
                warnings.filterwarnings("ignore", message="Skipping variable loading")
                run.model.load_weights(run.checkpoints / BEST_WEIGHTS)
        metrics, images = _evaluate(run)
        training_log.log_final(metrics, images)
        _export(run, metrics)
    finally:
        training_log.finish()
    run.state.finished = True
    run.save_state()
    return TrainResult(run.run_dir, run.bundle_dir, metrics, run.state.epochs_done,
                       run.resumed_from)


def _export(run: _Run, metrics: dict[str, Any]) -> None:
    assert run.model is not None
    settings = run.settings
    tiger = metrics.get("tiger") or {}
    export_bundle(run.model, run.class_map, run.bundle_dir, name=settings.savefile,
                  input_size=run.spec.input_size, crop_method=settings.crop_method,
                  snip_size=settings.snip_size, backbone=run.spec.code or run.spec.kimm_name,
                  recipe=settings.recipe, metrics=metrics,
                  tiger_threshold=tiger.get("threshold"), config_hash=run.hash,
                  metrics_dir=run.run_dir / EVALUATION_DIR,
                  extra={"kimm_model": run.spec.kimm_name, "weights": settings.weights,
                         "seed": settings.seed, "tiger_class": settings.tiger_class,
                         "tiger_target_recall": settings.tiger_recall,
                         **({"snips": run.snips.model_dump(mode="json")} if run.snips else {})})


@contextlib.contextmanager
def _deterministic_ops() -> Iterator[None]:
    """TensorFlow's deterministic kernels while training; the process's previous setting
    afterwards (a worker or test process may run other TensorFlow code later)."""
    # The public API has enable/disable only; the query lives in the module they come from.
    from tensorflow.python.framework import config

    was_enabled = config.is_op_determinism_enabled()
    config.enable_op_determinism()
    try:
        yield
    finally:
        if not was_enabled:
            config.disable_op_determinism()
