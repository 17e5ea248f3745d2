"""Benchmark: training throughput with the real input pipeline vs in-memory tensors.

Both variants train the same compiled model (kimm EfficientNetV2B0 = MEWC's ``EN0``, random
weights, mewc head, focal loss, AdamW amsgrad) for the same number of images per epoch:

(a) in memory: the epoch's images already decoded, resized, converted to float32 and one-hot
    labelled as tensors already cut into batches (``Dataset.from_tensor_slices`` over them) —
    the upper bound: no decoding, sampling, shuffling or conversion at all;
(b) tigertrap's pipeline: 600 px snip JPEGs on disk, decoded in parallel and resized by tf.data
    into the uint8 memory cache once, then per epoch re-sampled per class, shuffled, gathered in
    batches, converted and prefetched (:mod:`tigertrap.train.data`) — what ``tigertrap train``
    runs with ``CACHE=memory`` (``--disk`` also times ``CACHE=disk``: a tf.data cache file
    streamed through a shuffle buffer).

The same compiled model trains from each input in turn: a warm-up epoch each (tracing, filling
the cache file), then timed epochs alternating between the variants so that other load on the
machine hits them alike; the median epoch gives images per second, by wall clock and per
second of this process's CPU time (the steadier figure on a shared machine). The ratio (b)/(a)
should be at least 0.9. Measured for the frozen phase (backbone frozen: little compute
per image, so input work shows most) and the fine-tuning phase (last block unfrozen).

Run: ``.venv/bin/python scripts/bench/train_pipeline.py [--images 96] [--size 160] [--epochs 5]
[--disk]``
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np

if TYPE_CHECKING:
    import keras

from tests.train.synthetic import write_image_folders
from tigertrap.core.class_map import ClassMap
from tigertrap.train import data as datasets

CLASSES = ["tiger", "leopard", "deer", "boar"]
SNIP_SIZE = 600
BATCH = 16
SEED = 1


def _build(size: int, unfreeze: bool) -> keras.Model:
    import keras

    from tigertrap.train.backbones import build_backbone, resolve_backbone
    from tigertrap.train.model import build_classifier, unfreeze_last_blocks

    keras.utils.set_random_seed(SEED)
    model = build_classifier(build_backbone(resolve_backbone("EN0", size), None), len(CLASSES))
    if unfreeze:
        unfreeze_last_blocks(model, 1)
    model.compile(optimizer=keras.optimizers.AdamW(1e-4, amsgrad=True, weight_decay=1e-4),
                  loss=keras.losses.CategoricalFocalCrossentropy(), jit_compile=False)
    return model


class _Variants:
    """The same compiled model trained one epoch at a time from each input."""

    def __init__(self, split: datasets.LabelledImages, counts: np.ndarray, size: int,
                 unfreeze: bool, cache_dir: Path) -> None:
        self.counts = counts
        self.model = _build(size, unfreeze)
        self.memory = datasets.InMemoryImages.load(split, size)
        self.disk = datasets.decoded_dataset(split, size, cache_dir / "train.tfcache")
        import tensorflow as tf

        images = tf.cast(tf.convert_to_tensor(self.memory.images), tf.float32)
        order = np.repeat(np.arange(len(split.labels)), counts)
        whole = len(order) // BATCH * BATCH  # pre-batched: no per-image slicing at all
        x = tf.reshape(tf.gather(images, order[:whole]), (-1, BATCH, size, size, 3))
        y = tf.reshape(tf.one_hot(split.labels[order[:whole]], len(CLASSES)),
                       (-1, BATCH, len(CLASSES)))
        self.tensors = tf.data.Dataset.from_tensor_slices((x, y)).prefetch(2)

    def in_memory_tensors(self, seed: int) -> None:
        self.model.fit(self.tensors, epochs=1, verbose=0, shuffle=False)

    def _pipeline(self, source: datasets.DecodedImages, seed: int) -> None:
        data = datasets.train_dataset(source, self.counts, num_classes=len(CLASSES),
                                      batch_size=BATCH, seed=seed)
        self.model.fit(data, epochs=1, verbose=0, shuffle=False)

    def cache_memory(self, seed: int) -> None:
        self._pipeline(self.memory, seed)

    def cache_disk(self, seed: int) -> None:
        self._pipeline(self.disk, seed)


def _images_per_second(variants: _Variants, names: list[str], repeats: int
                       ) -> dict[str, tuple[float, float]]:
    """Median (wall-clock, process-CPU) images per second of each variant; the variants
    alternate so that other load on the machine hits them alike."""
    for name in names:  # warm-up: tracing, filling the cache file
        getattr(variants, name)(0)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        for name in names:
            start, start_cpu = time.perf_counter(), time.process_time()
            getattr(variants, name)(repeat + 1)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    images = int(variants.counts.sum())
    return {name: (images / float(np.median(wall[name])), images / float(np.median(cpu[name])))
            for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="snips per class on disk")
    parser.add_argument("--size", type=int, default=160, help="model input size")
    parser.add_argument("--epochs", type=int, default=5,
                        help="timed epochs per variant (median reported)")
    parser.add_argument("--disk", action="store_true", help="also time CACHE=disk")
    args = parser.parse_args()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model_name = next((line.split(":", 1)[1].strip() for line in cpu.splitlines()
                       if line.startswith("Model name")), platform.processor())
    print(f"machine: {os.cpu_count()} cores, {model_name}")
    with tempfile.TemporaryDirectory() as folder:
        root = write_image_folders(Path(folder), CLASSES, {"train": args.images},
                                   size=SNIP_SIZE, seed=SEED)
        split = datasets.read_folders(root, ClassMap(CLASSES))["train"]
        counts = datasets.epoch_counts(split.labels, len(CLASSES),
                                       dict.fromkeys(range(len(CLASSES)), args.images), SEED)
        print(f"{len(split)} snips of {SNIP_SIZE} px (JPEG), EN0 at {args.size} px, batch "
              f"{BATCH}, {int(counts.sum())} images per epoch, {args.epochs} timed epochs")
        names = ["in_memory_tensors", "cache_memory"] + (["cache_disk"] if args.disk else [])
        for phase, unfreeze in (("frozen backbone", False), ("last block unfrozen", True)):
            variants = _Variants(split, counts, args.size, unfreeze, Path(folder) / phase)
            rates = _images_per_second(variants, names, args.epochs)
            for clock, index in (("wall", 0), ("CPU", 1)):
                base = rates["in_memory_tensors"][index]
                line = f"{phase:<20} {clock:<4} in-memory tensors {base:6.1f} img/s"
                for name in names[1:]:
                    rate = rates[name][index]
                    label = name.replace("cache_", "pipeline CACHE=")
                    line += f" | {label} {rate:6.1f} img/s, ratio {rate / base:.2f}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
