"""The mewc recipe end to end in-process: progressive stages, resume, reproducibility."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from tests.train.conftest import tiny_mewc_settings
from tigertrap.train.training import TrainResult, train


class Interrupted(RuntimeError):
    """Stands for a worker killed between epochs."""


#: Files in the training data that do not decode: (split/class/name, bytes or fixture name).
BAD_FILES = {
    "train/tiger/empty.jpg": b"",
    "train/deer/error_page.jpg": b"<html><body>503 Service Unavailable</body></html>",
    "val/boar/truncated.jpg": "cameratrapai_african_elephants_truncated_file.jpg",
}


def _stop_after_two_epochs(done: int, total: int) -> None:
    if done == 2:
        raise Interrupted


@pytest.fixture(scope="module")
def mewc_run(image_folders: Path, fixtures_dir: Path,
             tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The mewc recipe on the synthetic folders plus :data:`BAD_FILES`, stopped after its
    second epoch (a worker killed between epochs), then run again: it resumes."""
    root = tmp_path_factory.mktemp("mewc")
    data = shutil.copytree(image_folders / "ds", root / "ds")
    for name, content in BAD_FILES.items():
        if isinstance(content, str):
            content = (fixtures_dir / "edge_cases" / content).read_bytes()
        (data / name).write_bytes(content)
    settings = tiny_mewc_settings(data, root / "run")
    with pytest.raises(Interrupted):
        train(settings, progress=_stop_after_two_epochs)
    return train(settings)


def _history(run_dir: Path) -> list[dict[str, str]]:
    with (run_dir / "history.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_progressive_stages_change_magnitude_and_dropout(mewc_run: TrainResult) -> None:
    rows = _history(mewc_run.run_dir)
    assert [row["phase"] for row in rows] == ["frozen", "frozen", "progressive", "progressive"]
    assert [float(row["magnitude"]) for row in rows] == [0.0, 0.0, 0.1, 0.3]
    assert [float(row["dropout"]) for row in rows] == [0.1, 0.1, 0.1, 0.3]


def test_each_epoch_resamples_class_samples_default_per_class(mewc_run: TrainResult) -> None:
    assert {int(row["images"]) for row in _history(mewc_run.run_dir)} == {3 * 24}


def test_evaluation_writes_reports_matrices_and_tiger_operating_point(
        mewc_run: TrainResult) -> None:
    evaluation = mewc_run.run_dir / "evaluation"
    for split in ("test", "test2"):
        with (evaluation / f"{split}_classification_report.csv").open(newline="") as handle:
            rows = {row["class"]: row for row in csv.DictReader(handle)}
        assert {"tiger", "deer", "boar", "accuracy", "macro avg", "weighted avg"} <= set(rows)
        assert (evaluation / f"{split}_confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    tiger = mewc_run.metrics["tiger"]
    assert tiger["target_recall"] == 0.95
    assert tiger["val"]["recall"] >= 0.95
    assert set(tiger) >= {"threshold", "test", "test2"}


def test_bundle_manifest_carries_metrics_and_tiger_threshold(mewc_run: TrainResult) -> None:
    from tigertrap.core.bundle import verify_bundle

    manifest, class_map = verify_bundle(mewc_run.bundle_dir)
    assert list(class_map.names) == ["tiger", "deer", "boar"]
    assert manifest.tiger_threshold == mewc_run.metrics["tiger"]["threshold"]
    assert manifest.metrics["test"]["accuracy"] == mewc_run.metrics["test"]["accuracy"]
    assert (mewc_run.bundle_dir / "metrics" / "test_confusion_matrix.png").is_file()


def test_same_seed_and_settings_give_the_same_metrics(
        mewc_run: TrainResult, image_folders: Path, tmp_path: Path) -> None:
    # One uninterrupted run on the data without BAD_FILES: the same losses and metrics as the
    # interrupted and resumed run, so neither resuming nor the files left out change anything.
    again = train(tiny_mewc_settings(image_folders / "ds", tmp_path / "again"))
    assert again.resumed_from == 0
    assert _losses(again.run_dir) == _losses(mewc_run.run_dir)
    assert again.metrics["test"] == mewc_run.metrics["test"]
    assert not (again.run_dir / "unreadable_images.csv").exists()


def test_images_that_do_not_decode_are_left_out_and_listed_with_the_reason(
        mewc_run: TrainResult) -> None:
    with (mewc_run.run_dir / "unreadable_images.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    listed = {f"{row['split']}/{Path(row['path']).parent.name}/{Path(row['path']).name}"
              for row in rows}
    assert listed == set(BAD_FILES)
    assert all(row["reason"] for row in rows)


def _losses(run_dir: Path) -> list[tuple[str, str]]:
    return [(row["loss"], row["val_loss"]) for row in _history(run_dir)]


def test_interrupted_run_resumes_after_its_last_epoch(mewc_run: TrainResult) -> None:
    # Its losses equal an uninterrupted run's: test_same_seed_and_settings_give_the_same_metrics.
    assert mewc_run.resumed_from == 2
    assert [row["epoch"] for row in _history(mewc_run.run_dir)] == ["1", "2", "3", "4"]


def test_finished_run_is_not_trained_again(mewc_run: TrainResult) -> None:
    settings = tiny_mewc_settings(mewc_run.run_dir.parent.parent / "unused", mewc_run.run_dir)
    settings = settings.model_copy(update={"data_dir": _data_dir(mewc_run)})
    again = train(settings)
    assert again.epochs == 4 and again.resumed_from == 4


def _data_dir(run: TrainResult) -> Path:
    import json

    return Path(json.loads((run.run_dir / "settings.json").read_text())["data_dir"])
