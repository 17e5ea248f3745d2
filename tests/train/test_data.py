"""Training data: explicit class order, per-epoch class sampling, the val split contract."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.train.conftest import CLASSES, tiny_mewc_settings
from tigertrap.core.class_map import ClassMap
from tigertrap.train.data import DataError, epoch_counts, read_folders, read_snips_csv
from tigertrap.train.training import TrainError, load_splits


def test_labels_follow_the_class_map_not_the_folder_listing(image_folders: Path) -> None:
    splits = read_folders(image_folders / "ds", ClassMap(CLASSES))
    test = splits["test"]
    for path, label in zip(test.paths, test.labels, strict=True):
        assert CLASSES[label] == Path(path).parent.name


def test_a_folder_of_an_unknown_class_is_an_error_naming_it(image_folders: Path) -> None:
    with pytest.raises(DataError, match="boar"):
        read_folders(image_folders / "ds", ClassMap(["tiger", "deer"]))


def test_snips_csv_gives_splits_and_labels(image_folders: Path, tmp_path: Path) -> None:
    csv_path = image_folders / "ds" / "snips_test.csv"
    rows = [{"snip": f"train/deer/deer_{n:04d}.jpg", "label": "deer", "split": "train"}
            for n in range(3)] + [{"snip": "val/tiger/tiger_0000.jpg", "label": "tiger",
                                   "split": "val"}]
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["snip", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)
    splits = read_snips_csv(csv_path, ClassMap(CLASSES))
    assert list(splits["train"].labels) == [1, 1, 1] and list(splits["val"].labels) == [0]
    assert all(Path(path).is_file() for path in splits["train"].paths)


def test_classes_with_enough_images_are_sampled_without_replacement() -> None:
    labels = np.array([0] * 10 + [1] * 3)
    counts = epoch_counts(labels, 2, {0: 6, 1: 6}, seed=1)
    assert counts[:10].max() == 1 and counts[:10].sum() == 6
    assert counts[10:].sum() == 6 and counts[10:].min() >= 1


def test_each_epoch_draws_a_different_sample() -> None:
    labels = np.array([0] * 50)
    first, second = (epoch_counts(labels, 1, {0: 10}, seed=s) for s in (1, 2))
    assert first.sum() == second.sum() == 10 and not np.array_equal(first, second)


def test_a_missing_val_split_never_falls_back_to_test(image_folders: Path,
                                                      tmp_path: Path) -> None:
    data = tmp_path / "no-val"
    data.mkdir()
    for split in ("train", "test"):
        (data / split).symlink_to(image_folders / "ds" / split)
    settings = tiny_mewc_settings(data, tmp_path / "run")
    with pytest.raises(TrainError, match="val"):
        load_splits(settings, ClassMap(CLASSES))


@pytest.mark.parametrize("cache", ["memory", "disk"])
def test_an_epoch_holds_exactly_the_sampled_images_per_class(
        image_folders: Path, tmp_path: Path, cache: str) -> None:
    from tigertrap.train.data import InMemoryImages, decoded_dataset, train_dataset

    split = read_folders(image_folders / "ds", ClassMap(CLASSES))["train"]
    samples = {0: 30, 1: 12, 2: 7}  # tiger short (20 images): drawn with replacement
    counts = epoch_counts(split.labels, 3, samples, seed=4)
    if cache == "memory":
        source = InMemoryImages.load(split, 16)
    else:
        source = decoded_dataset(split, 16, tmp_path / "train.tfcache")
        assert (tmp_path / "train.tfcache.index").is_file()
    per_class = np.zeros(3, dtype=int)
    shapes = set()
    for images, labels in train_dataset(source, counts, num_classes=3, batch_size=8, seed=4):
        per_class += labels.numpy().sum(axis=0).astype(int)
        shapes.add(tuple(images.shape[1:]))
    assert per_class.tolist() == [30, 12, 7]
    assert shapes == {(16, 16, 3)}


def test_images_outside_a_jobs_data_root_are_left_out_unopened(image_folders: Path,
                                                               tmp_path: Path) -> None:
    from tigertrap.train.data import OUTSIDE_ROOT, drop_unreadable

    root = tmp_path / "data"
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.jpg"
    secret.write_bytes((image_folders / "ds" / "train" / "deer" / "deer_0000.jpg").read_bytes())
    inside = root / "snips" / "deer_0000.jpg"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(secret.read_bytes())
    (root / "snips" / "linked.jpg").symlink_to(secret)
    csv_path = root / "snips" / "snips.csv"
    csv_path.write_text("snip,label,split\ndeer_0000.jpg,deer,train\nlinked.jpg,deer,train\n"
                        f"{secret},deer,train\n")

    splits = read_snips_csv(csv_path, ClassMap(CLASSES))
    kept, dropped = drop_unreadable(splits, image_root=root)

    assert [Path(path).name for path in kept["train"].paths] == ["deer_0000.jpg"]
    assert sorted(Path(item.path).name for item in dropped) == ["linked.jpg", "secret.jpg"]
    assert {item.reason for item in dropped} == {OUTSIDE_ROOT}
