"""Settings of the train stage, with mewc-train's key names, and the two recipe presets.

Keys are matched without regard to case (env file ``services/train/train.env``, a YAML file,
the environment, CLI options). A key left unset (``None``) takes its value from the chosen
``RECIPE``:

- ``mewc`` (mewc-train): a frozen backbone for ``FROZ_EPOCH`` epochs, then the last ``BUF`` blocks
  unfrozen (BatchNorm kept frozen) through progressive stages whose RandAugment magnitude
  (``MAGNITUDES``) and dropout (``DROPOUTS``) grow; focal loss; AdamW with amsgrad and weight
  decay ``OPTIM_REG``; an ``expon``/``cosine``/``polynomial`` learning-rate schedule.
- ``terainet`` (alexvmt/TeraiNet): a frozen backbone at 224 px, pooling -> dropout 0.2 -> dense
  softmax, label smoothing 0.1, learning rate reduced on a val-loss plateau, early stopping on
  val loss.

Every key is overridable; the README lists each with its meaning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode

from tigertrap.core.config import StageSettings

__all__ = [
    "PATH_KEYS",
    "RECIPES",
    "Recipe",
    "TrainSettings",
    "apply_recipe",
    "config_hash",
    "resolve_paths",
]

Recipe = Literal["mewc", "terainet"]

#: Values a recipe gives to every key the user left unset.
RECIPES: dict[str, dict[str, Any]] = {
    "mewc": {
        "head": "mewc", "loss": "focal", "label_smoothing": 0.0, "optimizer": "adamw",
        "lr_scheduler": "expon", "froz_epoch": 10, "buf": 1, "prog_stage_len": 7,
        "prog_tot_epoch": 30, "magnitudes": [0.2, 0.4, 0.6, 0.8],
        "dropouts": [0.1, 0.2, 0.3, 0.4], "early_stop_patience": 0,
    },
    "terainet": {
        "head": "terainet", "loss": "crossentropy", "label_smoothing": 0.1,
        "optimizer": "adamw", "lr_scheduler": "plateau", "froz_epoch": 30, "buf": 0,
        "prog_stage_len": 0, "prog_tot_epoch": 0, "magnitudes": [0.0], "dropouts": [0.2],
        "early_stop_patience": 5, "input_size": 224,
    },
}
FloatList = Annotated[list[float], NoDecode]


class TrainSettings(StageSettings):
    """What to train on, which backbone and recipe, and where the results go."""

    # --- data and outputs (paths are relative to the data root in jobs) ---
    #: Folder holding ``train/``, ``val/``, ``test/``, ``test2/`` (each ``<class>/<image>``).
    data_dir: Path | None = None
    #: Instead of folders: a snips CSV with path, label and split columns.
    snips_csv: Path | None = None
    #: ``class_map.yaml`` (output index -> class). Default: ``<data_dir>/class_map.yaml``.
    class_map: Path | None = None
    #: The class order written inline instead of a class map file.
    classes: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: Run folder: checkpoints, logs, evaluation, wandb.
    output_path: Path = Path("runs/train")
    #: Bundle folder. Default: ``models/classifiers/<SAVEFILE>`` under the data root.
    bundle_path: Path | None = None
    savefile: str = "tigertrap"

    # --- backbone ---
    model: str = "ENS"
    #: ``imagenet`` (kimm's download or cache), ``none``, or a local weights file.
    weights: str = "imagenet"
    #: Square input size; default MEWC's table for the code (224 for other kimm models).
    input_size: int | None = Field(None, gt=0)

    # --- recipe ---
    recipe: Recipe = "mewc"
    seed: int = 12345
    batch_size: int = Field(16, ge=1)
    head: Literal["mewc", "terainet"] | None = None
    loss: Literal["focal", "crossentropy"] | None = None
    label_smoothing: float | None = Field(None, ge=0.0, lt=1.0)
    optimizer: Literal["adamw", "rmsprop", "lion"] | None = None
    optim_reg: float = Field(1e-4, ge=0.0)
    learning_rate: float = Field(1e-4, gt=0.0)
    lr_scheduler: Literal["expon", "cosine", "polynomial", "plateau"] | None = None
    #: ``plateau``: multiply the learning rate by this after LR_PATIENCE epochs without gain.
    lr_factor: float = Field(0.2, gt=0.0, lt=1.0)
    lr_patience: int = Field(2, ge=1)
    #: Stop after this many epochs without a lower val loss (0: never stop early).
    early_stop_patience: int | None = Field(None, ge=0)
    num_aug: int = Field(3, ge=0)
    froz_epoch: int | None = Field(None, ge=0)
    #: Blocks unfrozen after the frozen epochs: 0 keeps the backbone frozen, -1 unfreezes all.
    buf: int | None = Field(None, ge=-1)
    prog_stage_len: int | None = Field(None, ge=0)
    prog_tot_epoch: int | None = Field(None, ge=0)
    magnitudes: FloatList | None = None
    dropouts: FloatList | None = None
    class_samples_default: int = Field(4000, ge=1)
    #: Per-class draws per epoch, ``{class: count}`` (MEWC's list of {SAMPLES, CLASS} works too).
    class_samples_specific: Annotated[dict[str, int], NoDecode] = Field(default_factory=dict)

    # --- input pipeline ---
    #: Decoded-image cache: ``memory``, ``disk`` (a file in the run folder) or ``none``.
    cache: Literal["memory", "disk", "none"] = "memory"

    # --- evaluation and bundle ---
    #: Metric that picks the best checkpoint (lower is better for *loss, higher otherwise).
    checkpoint_monitor: Literal["val_loss", "val_accuracy"] = "val_loss"
    tiger_class: str = "tiger"
    tiger_recall: float = Field(0.95, gt=0.0, le=1.0)
    crop_method: Literal["exact", "square"] = "exact"
    snip_size: int = Field(600, gt=0)

    # --- logging ---
    wandb_project: str = "tigertrap"
    wandb_entity: str | None = None
    #: ``offline`` (default: a run folder inside OUTPUT_PATH), ``online`` or ``disabled``.
    wandb_mode: Literal["offline", "online", "disabled"] = "offline"

    @field_validator("magnitudes", "dropouts", mode="before")
    @classmethod
    def _comma_floats(cls, value: Any) -> Any:
        if isinstance(value, (int, float)):  # one stage, e.g. MAGNITUDES=0.5
            return [float(value)]
        if isinstance(value, str):
            text = value.strip().strip("[]")
            return [float(part) for part in text.split(",") if part.strip()]
        return value

    @field_validator("classes", mode="before")
    @classmethod
    def _comma_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("class_samples_specific", mode="before")
    @classmethod
    def _class_samples(cls, value: Any) -> Any:
        if value is None or value == "":
            return {}
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, list):  # MEWC: [{SAMPLES: 3000, CLASS: "13"}, ...]
            return {str(_get(item, "class")): int(_get(item, "samples")) for item in value}
        return value

    @field_validator("magnitudes")
    @classmethod
    def _magnitudes_in_range(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not 0.0 <= m <= 1.0 for m in value):
            raise ValueError("every magnitude must be between 0 and 1")
        return value

    @field_validator("dropouts")
    @classmethod
    def _dropouts_in_range(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(not 0.0 <= d < 1.0 for d in value):
            raise ValueError("every dropout must be in [0, 1)")
        return value

    @model_validator(mode="after")
    def _stages_match(self) -> TrainSettings:
        if self.magnitudes and self.dropouts and len(self.magnitudes) != len(self.dropouts):
            raise ValueError("MAGNITUDES and DROPOUTS must list the same number of stages")
        return self


def _get(item: dict[str, Any], key: str) -> Any:
    for name, value in item.items():
        if str(name).lower() == key:
            return value
    raise ValueError(f"CLASS_SAMPLES_SPECIFIC entries need {key.upper()}")


def apply_recipe(settings: TrainSettings) -> TrainSettings:
    """``settings`` with every unset key filled from its recipe (a new object)."""
    preset = RECIPES[settings.recipe]
    filled = {key: value for key, value in preset.items() if getattr(settings, key) is None}
    resolved = settings.model_copy(update=filled)
    if resolved.magnitudes and resolved.dropouts and (
            len(resolved.magnitudes) != len(resolved.dropouts)):
        from tigertrap.core.config import ConfigError

        raise ConfigError("MAGNITUDES", "MAGNITUDES and DROPOUTS must list the same number of "
                                        "stages")
    return resolved


def config_hash(settings: TrainSettings) -> str:
    """sha256 (first 16 hex digits) of the settings that shape the model."""
    ignored = {"wandb_mode", "wandb_entity", "wandb_project", "cache", "output_path",
               "bundle_path"}
    data = settings.model_dump(mode="json", exclude=ignored)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


#: Keys that name a path; jobs give them relative to the data root.
PATH_KEYS = ("data_dir", "snips_csv", "class_map", "output_path", "bundle_path")
#: Where bundles go under the data root when BUNDLE_PATH is not set.
CLASSIFIERS_DIR = Path("models/classifiers")
_WEIGHT_WORDS = {"", "none", "null", "random", "imagenet"}


def resolve_paths(settings: TrainSettings, resolve: Callable[[Path], Path]) -> TrainSettings:
    """``settings`` with every path passed through ``resolve`` (e.g. ``DataRoot.resolve``),
    including a local WEIGHTS file, and BUNDLE_PATH defaulting to
    ``models/classifiers/<SAVEFILE>``."""
    update: dict[str, Any] = {}
    for key in PATH_KEYS:
        value = getattr(settings, key)
        if value is not None:
            update[key] = resolve(Path(value))
    if settings.bundle_path is None:
        update["bundle_path"] = resolve(CLASSIFIERS_DIR / settings.savefile)
    if settings.weights.strip().lower() not in _WEIGHT_WORDS:
        update["weights"] = str(resolve(Path(settings.weights)))
    return settings.model_copy(update=update)
