"""Training data: labelled image lists per split, per-epoch class sampling, tf.data pipelines.

Two layouts are read, both as snip writes them:

- folders ``<data>/<split>/<class>/<image>`` (``snip --by-class``);
- a ``snips.csv`` with a path column (relative to the CSV's folder), a label column and a split
  column.

Labels are indices into the explicit class map, never the order of a folder listing; an image of
a class the map does not know is an error naming the class. Each epoch MEWC re-samples
``CLASS_SAMPLES_DEFAULT`` images per class (or a per-class count), drawing with replacement only
for a class that has fewer images than that.

The pipeline decodes in parallel, resizes to the model's input size, caches the decoded ``uint8``
images (memory or a file) once, then each epoch repeats every cached image as often as the epoch's
sample drew it, shuffles, batches, augments (RandAugment) and prefetches.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tigertrap.core.class_map import ClassMap
from tigertrap.core.images import is_image_file

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "SPLITS",
    "DataError",
    "LabelledImages",
    "epoch_counts",
    "eval_dataset",
    "read_folders",
    "read_snips_csv",
    "train_dataset",
]

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "test2")
PATH_COLUMNS = ("snip", "snip_file", "crop", "file", "path", "image")
LABEL_COLUMNS = ("label", "class", "species")
SPLIT_COLUMN = "split"
#: Largest number of decoded images the shuffle buffer holds.
SHUFFLE_BUFFER = 4096


class DataError(ValueError):
    """Training data that cannot be used as given (missing split, unknown class, bad CSV)."""


@dataclass(frozen=True)
class LabelledImages:
    """One split: image paths and their class indices (into the class map)."""

    paths: tuple[str, ...]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def class_counts(self, num_classes: int) -> np.ndarray:
        """Images per class index."""
        return np.bincount(self.labels, minlength=num_classes)


def _labelled(pairs: list[tuple[str, str]], class_map: ClassMap, source: str) -> LabelledImages:
    unknown = sorted({label for _, label in pairs if label not in class_map.names})
    if unknown:
        raise DataError(f"{source}: classes {', '.join(unknown)} are not in the class map "
                        f"({', '.join(class_map.names)}); add them to CLASS_MAP or remove them")
    pairs = sorted(pairs)  # a stable order whatever the file system lists
    labels = np.array([class_map.index(label) for _, label in pairs], dtype="int64")
    return LabelledImages(tuple(path for path, _ in pairs), labels)


def read_folders(root: Path, class_map: ClassMap) -> dict[str, LabelledImages]:
    """``{split: images}`` for each split folder under ``root`` that exists."""
    splits = {}
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        pairs = [(str(path), path.parent.name) for path in folder.glob("*/*")
                 if path.is_file() and is_image_file(path)]
        splits[split] = _labelled(pairs, class_map, str(folder))
    return splits


def _column(fieldnames: list[str], candidates: tuple[str, ...], csv_path: Path) -> str:
    lowered = {name.lower(): name for name in fieldnames}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    raise DataError(f"{csv_path}: no column named any of {', '.join(candidates)}")


def read_snips_csv(csv_path: Path, class_map: ClassMap) -> dict[str, LabelledImages]:
    """``{split: images}`` from a snips CSV (rows without a label or split are skipped)."""
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        fields = list(reader.fieldnames or [])
        path_col = _column(fields, PATH_COLUMNS, csv_path)
        label_col = _column(fields, LABEL_COLUMNS, csv_path)
        split_col = _column(fields, (SPLIT_COLUMN,), csv_path)
        by_split: dict[str, list[tuple[str, str]]] = {}
        for row in reader:
            split, label = (row.get(split_col) or "").strip(), (row.get(label_col) or "").strip()
            if split and label and row.get(path_col):
                path = str(csv_path.parent / row[path_col])
                by_split.setdefault(split, []).append((path, label))
    return {split: _labelled(pairs, class_map, f"{csv_path} split {split}")
            for split, pairs in by_split.items() if split in SPLITS}


def epoch_counts(labels: np.ndarray, num_classes: int, samples: Mapping[int, int],
                 seed: int) -> np.ndarray:
    """How often each image is drawn this epoch (MEWC's per-epoch class re-sampling).

    Class ``c`` gets ``samples[c]`` draws: without replacement when it has at least that many
    images, with replacement only when it is short. ``seed`` makes the draw repeatable.
    """
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(labels), dtype="int64")
    for index in range(num_classes):
        members = np.flatnonzero(labels == index)
        wanted = samples[index]
        if len(members) == 0 or wanted <= 0:
            continue
        drawn = rng.choice(members, size=wanted, replace=len(members) < wanted)
        np.add.at(counts, drawn, 1)
    return counts


def _decode(path: tf.Tensor, size: int) -> tf.Tensor:
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    image = tf.image.resize(image, (size, size), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def decoded_dataset(images: LabelledImages, size: int, cache: str | Path | None
                    ) -> tf.data.Dataset:
    """``(uint8 image, label)`` for every image in order, decoded in parallel and cached.

    ``cache`` is ``None`` (no cache), ``"memory"`` or the path of a cache file.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((list(images.paths), images.labels))
    dataset = dataset.map(lambda path, label: (_decode(path, size), label),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache == "memory":
        return dataset.cache()
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        return dataset.cache(str(cache))
    return dataset


def _one_hot(num_classes: int) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    import tensorflow as tf

    def convert(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return image, tf.one_hot(label, num_classes)

    return convert


def train_dataset(decoded: tf.data.Dataset, counts: np.ndarray, *, num_classes: int,
                  batch_size: int, seed: int, augment: object | None = None) -> tf.data.Dataset:
    """One epoch: each cached image repeated ``counts[i]`` times, shuffled, batched, augmented
    (``augment`` is a Keras layer applied to uint8-valued float batches), prefetched."""
    import tensorflow as tf

    batches = -(-int(counts.sum()) // batch_size)
    draws = tf.data.Dataset.from_tensor_slices(counts)
    dataset = (tf.data.Dataset.zip(decoded, draws)
               .filter(lambda item, count: count > 0)
               .flat_map(lambda item, count: tf.data.Dataset.from_tensors(item).repeat(count))
               .shuffle(min(int(counts.sum()), SHUFFLE_BUFFER), seed=seed,
                        reshuffle_each_iteration=False)
               .map(lambda image, label: (tf.cast(image, tf.float32), label))
               .map(_one_hot(num_classes))
               .batch(batch_size)
               .apply(tf.data.experimental.assert_cardinality(batches)))
    if augment is not None:
        dataset = dataset.map(lambda images, labels: (augment(images, training=True), labels),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def eval_dataset(decoded: tf.data.Dataset, *, num_classes: int, batch_size: int
                 ) -> tf.data.Dataset:
    """Every image once, in order, batched and prefetched (validation and test)."""
    import tensorflow as tf

    return (decoded.map(lambda image, label: (tf.cast(image, tf.float32), label))
            .map(_one_hot(num_classes)).batch(batch_size).prefetch(tf.data.AUTOTUNE))
