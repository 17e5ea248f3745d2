"""Per-epoch bookkeeping: best checkpoint, learning-rate cut on a plateau, early stopping."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tigertrap.core.config import load_settings
from tigertrap.train.config import TrainSettings, apply_recipe
from tigertrap.train.training import BEST_WEIGHTS, RunState, _after_epoch


def _run(tmp_path: Path, **settings: Any) -> SimpleNamespace:
    import keras

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])
    optimizer = keras.optimizers.AdamW(learning_rate=1e-3)
    optimizer.build(model.trainable_variables)
    return SimpleNamespace(
        settings=apply_recipe(load_settings(TrainSettings, recipe="terainet", **settings)),
        state=RunState(config_hash="x", run_id="y"), optimizer=optimizer, model=model,
        checkpoints=tmp_path)


def _epoch(run: SimpleNamespace, epoch: int, val_loss: float) -> None:
    lr = float(run.optimizer.learning_rate)
    _after_epoch(run, {"epoch": epoch, "val_loss": val_loss, "val_accuracy": 0.5,
                       "learning_rate": lr})


def test_learning_rate_is_cut_after_lr_patience_epochs_without_gain(tmp_path: Path) -> None:
    run = _run(tmp_path, lr_patience=2, lr_factor=0.5)
    for epoch, loss in enumerate([1.0, 1.0, 1.0], start=1):
        _epoch(run, epoch, loss)
    assert float(run.optimizer.learning_rate) == pytest.approx(5e-4)
    assert run.state.learning_rate == pytest.approx(5e-4)


def test_training_stops_after_patience_epochs_without_lower_val_loss(tmp_path: Path) -> None:
    run = _run(tmp_path, early_stop_patience=2)
    for epoch, loss in enumerate([1.0, 0.8, 0.9], start=1):
        _epoch(run, epoch, loss)
    assert not run.state.stopped_early
    _epoch(run, 4, 0.85)
    assert run.state.stopped_early


def test_best_checkpoint_follows_the_lowest_val_loss(tmp_path: Path) -> None:
    run = _run(tmp_path)
    for epoch, loss in enumerate([1.0, 0.7, 0.9], start=1):
        _epoch(run, epoch, loss)
    assert (run.state.best_epoch, run.state.best) == (2, 0.7)
    assert (tmp_path / BEST_WEIGHTS).is_file()
