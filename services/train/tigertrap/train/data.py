"""Training data: labelled image lists per split, per-epoch class sampling, tf.data pipelines.

Two layouts are read, both as snip writes them:

- folders ``<data>/<split>/<class>/<image>`` (``snip --by-class``);
- a ``snips.csv`` with a path column (relative to the CSV's folder), a label column and a split
  column.

Labels are indices into the explicit class map, never the order of a folder listing; an image of
a class the map does not know is an error naming the class. An image that does not decode (0
bytes, truncated, not an image) is left out before training with its reason
(:func:`drop_unreadable`), so one bad file never stops an epoch. Each epoch MEWC re-samples
``CLASS_SAMPLES_DEFAULT`` images per class (or a per-class count), drawing with replacement only
for a class that has fewer images than that.

The pipeline decodes in parallel and resizes to the model's input size once, caching the
``uint8`` images in memory (one tensor, gathered by index) or in a tf.data cache file; then each
epoch draws its sample, shuffles, batches, converts, augments (RandAugment) and prefetches.
"""

from __future__ import annotations

import csv
import functools
import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tigertrap.core.class_map import ClassMap
from tigertrap.core.images import ImageLoadError, is_image_file, open_image
from tigertrap.core.paths import within

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "SPLITS",
    "DataError",
    "DecodedImages",
    "InMemoryImages",
    "LabelledImages",
    "Unreadable",
    "drop_unreadable",
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
#: The readability check decodes at 1/8 scale: the whole JPEG stream is read, little is built.
CHECK_DRAFT_SIZE = (64, 64)
#: Why an image outside a job's data root is left out.
OUTSIDE_ROOT = "outside the data root (not read)"


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
        pairs = [(str(path), class_dir.name) for class_dir in folder.iterdir()
                 if class_dir.is_dir() for path in class_dir.rglob("*")
                 if path.is_file() and is_image_file(path)]
        splits[split] = _labelled(pairs, class_map, str(folder))
    return splits


@dataclass(frozen=True)
class Unreadable:
    """An image left out of training: its split, path and why it could not be decoded."""

    split: str
    path: str
    reason: str


def _problem(path: str, image_root: Path | None = None) -> str | None:
    if image_root is not None and not within(path, image_root):
        return OUTSIDE_ROOT
    try:
        open_image(path, draft_size=CHECK_DRAFT_SIZE).close()
    except ImageLoadError as error:
        return error.reason
    return None


def drop_unreadable(splits: Mapping[str, LabelledImages], *, threads: int | None = None,
                    image_root: Path | None = None
                    ) -> tuple[dict[str, LabelledImages], list[Unreadable]]:
    """``splits`` without the images that do not decode, and those images with the reason
    (decoded in parallel, at reduced scale). With ``image_root``, images outside it (through
    a symlink, or named so by a snips CSV) are dropped without being opened."""
    kept: dict[str, LabelledImages] = {}
    dropped: list[Unreadable] = []
    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        for split, images in splits.items():
            problems = list(pool.map(functools.partial(_problem, image_root=image_root),
                                     images.paths))
            good = [i for i, problem in enumerate(problems) if problem is None]
            dropped += [Unreadable(split, images.paths[i], problem)
                        for i, problem in enumerate(problems) if problem is not None]
            kept[split] = LabelledImages(tuple(images.paths[i] for i in good),
                                         images.labels[good])
    return kept, dropped


def _column(fieldnames: list[str], candidates: tuple[str, ...], csv_path: Path) -> str:
    lowered = {name.lower(): name for name in fieldnames}
    for candidate in candidates:
        if candidate in lowered:
            return lowered[candidate]
    raise DataError(f"{csv_path}: no column named any of {', '.join(candidates)}")


def read_snips_csv(csv_path: Path, class_map: ClassMap, splits: tuple[str, ...] = SPLITS
                   ) -> dict[str, LabelledImages]:
    """``{split: images}`` from a snips CSV for the named ``splits`` (rows without a label or
    split are skipped)."""
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
            for split, pairs in by_split.items() if split in splits}


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


def decoded_dataset(images: LabelledImages, size: int, cache: str | Path | None = None
                    ) -> tf.data.Dataset:
    """``(uint8 image, label)`` for every image in order, decoded in parallel.

    ``cache`` is ``None`` or the path of a tf.data cache file. The cache is filled here with
    one full pass (tf.data keeps a cache only when an iteration reaches the end, which a
    training epoch of known length never does); a complete cache file is just re-read.
    """
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((list(images.paths), images.labels))
    dataset = dataset.map(lambda path, label: (_decode(path, size), label),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        dataset = dataset.cache(str(cache))
        for _ in dataset.batch(LOAD_BATCH).prefetch(tf.data.AUTOTUNE):
            pass
    return dataset


@dataclass(frozen=True)
class InMemoryImages:
    """A split decoded once into one ``uint8`` tensor (the memory cache): batches are gathered
    from it by index, so each epoch can be sampled and fully shuffled at no decoding cost."""

    images: Any  # tf.Variable, (n, size, size, 3) uint8
    labels: np.ndarray

    @classmethod
    def load(cls, images: LabelledImages, size: int) -> InMemoryImages:
        """Decode every image of ``images`` in parallel into memory."""
        import tensorflow as tf

        batches = [batch for batch, _ in decoded_dataset(images, size).batch(LOAD_BATCH)
                   .prefetch(tf.data.AUTOTUNE)]
        return cls(tf.Variable(tf.concat(batches, axis=0), trainable=False), images.labels)


#: Images decoded per step when loading a split into memory.
LOAD_BATCH = 64
#: Decoded images of a split: in memory (gathered by index) or a stream (tf.data cache file).
DecodedImages = InMemoryImages | Any


def _to_model_input(num_classes: int
                    ) -> Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]]:
    """Batch-level conversion: float32 pixels 0-255 and one-hot labels."""
    import tensorflow as tf

    def convert(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.cast(images, tf.float32), tf.one_hot(labels, num_classes)

    return convert


def _gathered(source: InMemoryImages, order: np.ndarray, batch_size: int) -> tf.data.Dataset:
    import tensorflow as tf

    images, labels = source.images, tf.constant(source.labels)

    def gather(indices: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return tf.gather(images, indices), tf.gather(labels, indices)

    return (tf.data.Dataset.from_tensor_slices(order.astype("int64")).batch(batch_size)
            .map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True))


def _streamed(decoded: tf.data.Dataset, counts: np.ndarray, batch_size: int, seed: int
              ) -> tf.data.Dataset:
    import tensorflow as tf

    draws = tf.data.Dataset.from_tensor_slices(counts)
    return (tf.data.Dataset.zip(decoded, draws)
            .filter(lambda item, count: count > 0)
            .flat_map(lambda item, count: tf.data.Dataset.from_tensors(item).repeat(count))
            .shuffle(min(int(counts.sum()), SHUFFLE_BUFFER), seed=seed,
                     reshuffle_each_iteration=False)
            .batch(batch_size))


def train_dataset(source: DecodedImages, counts: np.ndarray, *, num_classes: int,
                  batch_size: int, seed: int, augment: Any = None) -> tf.data.Dataset:
    """One epoch: image ``i`` drawn ``counts[i]`` times, shuffled, batched, converted, augmented
    (``augment``: a Keras layer on float batches of 0-255 pixels), prefetched.

    In memory the shuffle is a full permutation; a streamed source shuffles within
    :data:`SHUFFLE_BUFFER` images.
    """
    import tensorflow as tf

    batches = -(-int(counts.sum()) // batch_size)
    if isinstance(source, InMemoryImages):
        order = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)),
                                                                  counts))
        dataset = _gathered(source, order, batch_size)
    else:
        dataset = _streamed(source, counts, batch_size, seed)
    dataset = (dataset.apply(tf.data.experimental.assert_cardinality(batches))
               .map(_to_model_input(num_classes), num_parallel_calls=tf.data.AUTOTUNE,
                    deterministic=True))
    if augment is not None:
        dataset = dataset.map(lambda images, labels: (augment(images, training=True), labels),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.prefetch(tf.data.AUTOTUNE)


def eval_dataset(source: DecodedImages, *, num_classes: int, batch_size: int
                 ) -> tf.data.Dataset:
    """Every image once, in order, batched and prefetched (validation and test)."""
    import tensorflow as tf

    if isinstance(source, InMemoryImages):
        dataset = _gathered(source, np.arange(len(source.labels)), batch_size)
    else:
        dataset = source.batch(batch_size)
    return (dataset.map(_to_model_input(num_classes), num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=True).prefetch(tf.data.AUTOTUNE))
