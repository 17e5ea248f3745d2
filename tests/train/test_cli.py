"""``tigertrap train CONFIG.yaml`` through the real command: learning, class order, wandb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.train.conftest import CLASSES, INPUT_SIZE, TINY_MODEL
from tests.train.wandb_records import history_rows, summary_values

TIGERTRAP = [sys.executable, "-m", "tigertrap.core"]


def _run_cli(data_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIGERTRAP_DATA": str(data_root)}
    env.pop("WANDB_MODE", None)
    return subprocess.run([*TIGERTRAP, "train", *args], capture_output=True, text=True,
                          env=env, timeout=600, check=False)


@pytest.fixture(scope="module")
def cli_run(image_folders: Path) -> dict[str, Any]:
    """A terainet-recipe run (frozen backbone, label smoothing, plateau, early stopping)."""
    config = image_folders / "terainet.yaml"
    config.write_text(yaml.safe_dump({
        "DATA_DIR": "ds", "CLASSES": CLASSES, "OUTPUT_PATH": "runs/terainet",
        "SAVEFILE": "terainet-test", "RECIPE": "terainet", "MODEL": TINY_MODEL,
        "WEIGHTS": "none", "INPUT_SIZE": INPUT_SIZE, "FROZ_EPOCH": 4,
        "CLASS_SAMPLES_DEFAULT": 32, "LEARNING_RATE": 3e-3, "SEED": 11,
    }))
    done = _run_cli(image_folders, str(config))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_learnable_images_reach_90_percent_val_accuracy(cli_run: dict[str, Any]) -> None:
    assert cli_run["metrics"]["val"]["accuracy"] >= 0.9


def test_bundle_goes_to_models_classifiers_under_the_data_root(
        cli_run: dict[str, Any], image_folders: Path) -> None:
    assert Path(cli_run["bundle_dir"]) == image_folders / "models/classifiers/terainet-test"


def test_folders_sorting_unlike_the_class_map_are_labelled_by_name(
        cli_run: dict[str, Any], image_folders: Path) -> None:
    import keras

    from tigertrap.core.class_map import ClassMap

    bundle = Path(cli_run["bundle_dir"])
    class_map = ClassMap.load(bundle / "class_map.yaml")
    assert list(class_map.names) == CLASSES != sorted(CLASSES)
    model = keras.saving.load_model(bundle / "model.keras")
    for folder in sorted((image_folders / "ds" / "test").iterdir()):
        images = np.stack([np.asarray(Image.open(path).convert("RGB").resize(
            (INPUT_SIZE, INPUT_SIZE))) for path in sorted(folder.glob("*.jpg"))])
        predicted = model.predict(images.astype("float32"), verbose=0).argmax(axis=1)
        names = [class_map.name(int(index)) for index in predicted]
        assert names.count(folder.name) >= 0.9 * len(names), (folder.name, names)


def test_wandb_offline_run_folder_holds_the_logged_metrics(cli_run: dict[str, Any]) -> None:
    runs = sorted(Path(cli_run["run_dir"]).glob("wandb/offline-run-*/run-*.wandb"))
    assert runs, "no offline wandb run inside the output folder"
    history = [row for row in history_rows(runs[-1]) if "val_accuracy" in row]
    assert [row["val_accuracy"] for row in history] == pytest.approx(
        [row["val_accuracy"] for row in _epochs(cli_run)])
    summary = summary_values(runs[-1])
    assert summary["test/accuracy"] == pytest.approx(cli_run["metrics"]["test"]["accuracy"])
    assert summary["tiger/threshold"] == pytest.approx(cli_run["metrics"]["tiger"]["threshold"])
    assert summary["test_confusion_matrix/_type"] == "image-file"


def _epochs(cli_run: dict[str, Any]) -> list[dict[str, float]]:
    import csv

    with (Path(cli_run["run_dir"]) / "history.csv").open(newline="") as handle:
        return [{key: float(value) for key, value in row.items() if key != "phase"}
                for row in csv.DictReader(handle)]


def test_terainet_recipe_smooths_labels_and_keeps_the_backbone_frozen(
        cli_run: dict[str, Any]) -> None:
    settings = json.loads((Path(cli_run["run_dir"]) / "settings.json").read_text())
    assert settings["label_smoothing"] == 0.1 and settings["buf"] == 0
    assert settings["lr_scheduler"] == "plateau" and settings["early_stop_patience"] == 5
    assert settings["dropouts"] == [0.2]


def test_wrong_setting_exits_2_naming_the_key(image_folders: Path, tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("DATA_DIR: ds\nMAGNITUDES: [0.2, 1.5]\n")
    done = _run_cli(image_folders, str(config))
    assert done.returncode == 2
    assert "MAGNITUDES" in done.stderr
