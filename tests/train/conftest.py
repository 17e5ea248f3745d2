"""Fixtures of the train tests: learnable synthetic image folders and tiny training settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.train.synthetic import write_image_folders

#: The class map's order; folder listings sort these as boar, deer, tiger.
CLASSES = ["tiger", "deer", "boar"]
IMAGE_SIZE = 40
INPUT_SIZE = 32
#: Random-init ResNet18 features already separate colours, so a frozen backbone learns fast.
TINY_MODEL = "ResNet18"
SPLIT_SIZES = {"train": 20, "val": 10, "test": 10, "test2": 4}


@pytest.fixture(scope="session")
def image_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/ds/<split>/<class>/*.jpg`` for :data:`CLASSES` (read-only for tests)."""
    root = tmp_path_factory.mktemp("train-data")
    write_image_folders(root / "ds", CLASSES, SPLIT_SIZES, size=IMAGE_SIZE, seed=3)
    return root


def tiny_mewc_settings(data_dir: Path, output: Path, **overrides: Any) -> Any:
    """A mewc-recipe run small enough for a test: 2 frozen epochs, 2 progressive stages."""
    from tigertrap.core.config import load_settings
    from tigertrap.train.config import TrainSettings

    values: dict[str, Any] = {
        "data_dir": data_dir, "classes": CLASSES, "output_path": output,
        "bundle_path": output / "bundle", "model": TINY_MODEL, "weights": "none",
        "input_size": INPUT_SIZE, "froz_epoch": 2, "buf": 1, "prog_stage_len": 1,
        "prog_tot_epoch": 2, "magnitudes": [0.1, 0.3], "dropouts": [0.1, 0.3],
        "class_samples_default": 24, "learning_rate": 1e-3, "seed": 7, "batch_size": 16,
        "wandb_mode": "disabled",
    }
    values.update(overrides)
    return load_settings(TrainSettings, **values)
