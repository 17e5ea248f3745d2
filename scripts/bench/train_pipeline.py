"""Benchmark: training throughput with the real input pipeline vs in-memory tensors.

Both variants train the same compiled model (kimm EfficientNetV2B0 = MEWC's ``EN0``, random
weights, mewc head, focal loss, AdamW amsgrad) for the same number of images per epoch:

(a) in memory: every image already decoded and resized in one float32 array, fed to
    ``model.fit(x, y)`` in the epoch's sampled order — the upper bound, no input work at all;
(b) tigertrap's pipeline: 600 px snip JPEGs on disk, decoded in parallel and resized by tf.data
    into the uint8 memory cache once, then per epoch re-sampled per class, shuffled, gathered in
    batches, converted and prefetched (:mod:`tigertrap.train.data`) — what ``tigertrap train``
    runs with ``CACHE=memory`` (``--disk`` also times ``CACHE=disk``: a tf.data cache file
    streamed through a shuffle buffer).

Each variant runs a warm-up epoch (tracing, filling a cache file), then timed epochs; the ratio
(b)/(a) should be at least 0.9. Measured for the frozen phase (backbone frozen: little compute
per image, so input work shows most) and the fine-tuning phase (last block unfrozen).

Run: ``.venv/bin/python scripts/bench/train_pipeline.py [--images 96] [--size 160] [--epochs 2]
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
    import tensorflow as tf

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


def _in_memory(decoded: tf.data.Dataset, labels: np.ndarray, counts: np.ndarray, size: int,
               unfreeze: bool, epochs: int) -> float:
    images = np.stack([image for image, _ in decoded.as_numpy_iterator()]).astype("float32")
    order = np.repeat(np.arange(len(labels)), counts)
    rng = np.random.default_rng(SEED)
    model = _build(size, unfreeze)
    x, y = images[order], np.eye(len(CLASSES), dtype="float32")[labels[order]]
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=False)  # warm-up
    start = time.perf_counter()
    for _ in range(epochs):
        shuffled = rng.permutation(len(order))
        model.fit(x[shuffled], y[shuffled], batch_size=BATCH, epochs=1, verbose=0,
                  shuffle=False)
    return epochs * len(order) / (time.perf_counter() - start)


def _pipeline(split: datasets.LabelledImages, counts: np.ndarray, size: int, unfreeze: bool,
              epochs: int, cache_file: Path | None) -> float:
    if cache_file is None:
        source: datasets.DecodedImages = datasets.InMemoryImages.load(split, size)
    else:
        source = datasets.decoded_dataset(split, size, cache_file)
    model = _build(size, unfreeze)

    def epoch(seed: int) -> None:
        data = datasets.train_dataset(source, counts, num_classes=len(CLASSES),
                                      batch_size=BATCH, seed=seed)
        model.fit(data, epochs=1, verbose=0, shuffle=False)

    epoch(0)  # warm-up: tracing (and filling a cache file)
    start = time.perf_counter()
    for index in range(epochs):
        epoch(index + 1)
    return epochs * int(counts.sum()) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="snips per class on disk")
    parser.add_argument("--size", type=int, default=160, help="model input size")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per variant")
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
        decoded = datasets.decoded_dataset(split, args.size)
        for phase, unfreeze in (("frozen backbone", False), ("last block unfrozen", True)):
            memory = _in_memory(decoded, split.labels, counts, args.size, unfreeze, args.epochs)
            pipeline = _pipeline(split, counts, args.size, unfreeze, args.epochs, None)
            print(f"{phase:<20} in-memory tensors {memory:7.1f} img/s | tigertrap pipeline "
                  f"(CACHE=memory) {pipeline:7.1f} img/s | ratio {pipeline / memory:.2f}",
                  flush=True)
            if args.disk:
                cache_file = Path(folder) / f"cache-{unfreeze}" / "train.tfcache"
                disk = _pipeline(split, counts, args.size, unfreeze, args.epochs, cache_file)
                print(f"{'':<20} tigertrap pipeline (CACHE=disk, shuffle buffer) {disk:7.1f} "
                      f"img/s | ratio {disk / memory:.2f}", flush=True)


if __name__ == "__main__":
    main()
