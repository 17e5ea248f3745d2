"""Benchmark: crops per second of three ways to classify the same crops with the same model.

(a) AddaxAI's MEWC adapter: one ``model.predict`` call per crop (open, resize, predict);
(b) mewc-predict: ``keras.utils.image_dataset_from_directory`` over the snip folder, then one
    ``model.predict`` over the dataset;
(c) tigertrap: a pool of threads decoding the crop files feeding
    :class:`tigertrap.classify.engine.InferenceEngine` in batches, on each backend: ONNX Runtime
    (the default), OpenVINO f32, and OpenVINO bf16 (CPUs with bfloat16 instructions).

The model is named by its MEWC code (``--model``): ``EN0`` (kimm EfficientNetV2B0 at 224 px, the
default here) or ``ENS`` (EfficientNetV2S at 384 px, tigertrap's and mewc-train's default);
random weights (speed does not depend on them), a 10-class head, exported as a tigertrap bundle
by the train stage's ``export_bundle``. The crops are cut from the real fixture images
(MegaDetector boxes and extra boxes) at mewc-snip's 600 px and saved as JPEG, as mewc-snip
writes them.

Rates are given per wall-clock second (throughput) and per CPU second of the process, all
threads counted (work per crop; steadier when other processes share the machine).

Run: ``.venv/bin/python scripts/bench/classify_engine.py [--model EN0] [--crops 256]
[--per-crop 48]``
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from PIL import Image

from tigertrap.classify.engine import InferenceEngine
from tigertrap.classify.model_input import load_crop
from tigertrap.core.crops import crop_detection
from tigertrap.core.images import open_image
from tigertrap.core.md_results import locate_image, read_md_results

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(os.environ.get("TIGERTRAP_FIXTURES", REPO.parent / "shared" / "fixtures"))
CACHE = Path(os.environ.get("TIGERTRAP_BENCH_CACHE", "/tmp/tigertrap-bench"))
CLASSES = 10
SNIP_SIZE = 600
BATCH_SIZE = 32
DECODE_WORKERS = 2
ENGINES = [
    ("(c) decode pool + InferenceEngine, ONNX Runtime", "onnx", "f32"),
    ("(c) decode pool + InferenceEngine, OpenVINO f32", "openvino", "f32"),
    ("(c) decode pool + InferenceEngine, OpenVINO bf16", "openvino", "bf16"),
]


def build_bundle(folder: Path, code: str) -> Path:
    """The benchmark bundle for MEWC code ``code`` (built once, then reused from the cache)."""
    if (folder / "manifest.json").is_file():
        return folder
    import keras

    from tigertrap.train.backbones import build_backbone, resolve_backbone
    from tigertrap.train.export import export_bundle
    from tigertrap.train.model import build_classifier

    keras.utils.set_random_seed(0)
    spec = resolve_backbone(code)
    backbone = build_backbone(spec, weights=None)
    model = build_classifier(backbone, CLASSES)
    names = [f"species_{n}" for n in range(CLASSES)]
    return export_bundle(model, names, folder, name=f"bench-{code.lower()}",
                         input_size=spec.input_size, backbone=spec.kimm_name, recipe="benchmark",
                         snip_size=SNIP_SIZE)


def _boxes() -> list[tuple[Path, list[float]]]:
    md_dir = FIXTURES / "md_outputs" / "microsoft_CameraTraps_test_images"
    results = read_md_results(md_dir / "expected_output_DRAFT.json")
    boxes = []
    for entry in results.images:
        path = locate_image(entry.file, md_dir)
        for detection in entry.detections or []:
            if path is not None and detection.category == "1" and detection.conf >= 0.05:
                boxes.append((path, list(detection.bbox)))
    rng = np.random.default_rng(0)
    for path in sorted((FIXTURES / "images").rglob("*")):
        if path.is_file():
            for _ in range(3):
                x, y = rng.uniform(0, 0.6, 2)
                w, h = rng.uniform(0.15, 0.4, 2)
                boxes.append((path, [x, y, w, h]))
    return boxes


def make_snips(folder: Path, count: int) -> list[Path]:
    """``count`` JPEG crops at 600 px in ``folder`` (cycling through the real boxes)."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) >= count:
        return existing[:count]
    boxes, images = _boxes(), {}
    for number in range(count):
        path, bbox = boxes[number % len(boxes)]
        if path not in images:
            images[path] = open_image(path)
        snip = crop_detection(images[path], bbox, size=SNIP_SIZE, method="exact")
        snip.save(folder / f"snip_{number:05d}.jpg", quality=95)
    return sorted(folder.glob("*.jpg"))[:count]


def timed(run: Callable[[], int]) -> tuple[int, float, float]:
    """``(crops, wall seconds, CPU seconds of this process, all threads)``."""
    start, cpu_start = time.perf_counter(), time.process_time()
    crops = run()
    return crops, time.perf_counter() - start, time.process_time() - cpu_start


def per_crop_predict(model, files: list[Path], size: int) -> Callable[[], int]:
    """(a) AddaxAI's MEWC adapter: open, resize to the input size, ``predict`` one crop."""

    def run() -> int:
        for path in files:
            with Image.open(path) as crop:
                array = np.array(crop.convert("RGB").resize((size, size)))
            model.predict(np.expand_dims(array, axis=0), verbose=0)
        return len(files)

    return run


def mewc_predict(model, folder: Path, size: int) -> Callable[[], int]:
    """(b) mewc-predict: a Keras image dataset over the snip folder, one ``predict`` call."""
    import keras

    def run() -> int:
        dataset = keras.utils.image_dataset_from_directory(
            folder, labels=None, label_mode=None, batch_size=BATCH_SIZE,
            image_size=(size, size), shuffle=False, verbose=False)
        return len(model.predict(dataset, verbose=0))

    return run


def engine_predict(engine: InferenceEngine, files: list[Path]) -> Callable[[], int]:
    """(c) tigertrap: decoding threads feed the engine full batches."""

    def load(path: Path) -> np.ndarray:
        return load_crop(path, engine.input_size)

    def run() -> int:
        done = 0
        with ThreadPoolExecutor(DECODE_WORKERS) as pool:
            inputs = pool.map(load, files)
            batch: list[np.ndarray] = []
            for array in inputs:
                batch.append(array)
                if len(batch) == BATCH_SIZE:
                    done += len(engine.predict(np.stack(batch)))
                    batch = []
            if batch:
                done += len(engine.predict(np.stack(batch)))
        return done

    return run


def engine_only(engine: InferenceEngine, inputs: np.ndarray) -> Callable[[], int]:
    """The engine alone on crops decoded beforehand: the ceiling of (c)."""
    return lambda: len(engine.predict(inputs))


def machine() -> str:
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model = next(line.split(":", 1)[1].strip() for line in lines.splitlines()
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="EN0",
                        help="MEWC backbone code: EN0 (the figures for the targets) or ENS "
                             "(the default of tigertrap and mewc-train)")
    parser.add_argument("--crops", type=int, default=256, help="crops for (b) and (c)")
    parser.add_argument("--per-crop", type=int, default=48, help="crops for (a), the slow loop")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of all methods, interleaved; the best round counts (other "
                             "processes on a shared machine slow single rounds down)")
    args = parser.parse_args()

    import keras

    from tigertrap.train.backbones import resolve_backbone

    spec = resolve_backbone(args.model)
    size = spec.input_size
    bundle = build_bundle(CACHE / f"bundle-{args.model.lower()}-{size}", args.model)
    snips = make_snips(CACHE / "snips", args.crops)
    mewc_folder = CACHE / f"snips-{args.crops}"
    if not mewc_folder.is_dir() or len(list(mewc_folder.glob("*.jpg"))) != args.crops:
        shutil.rmtree(mewc_folder, ignore_errors=True)
        mewc_folder.mkdir(parents=True)
        for path in snips:
            os.link(path, mewc_folder / path.name)

    model = keras.saving.load_model(bundle / "model.keras", compile=False)
    engines = {label: InferenceEngine(bundle, backend=backend, precision=precision,
                                      max_batch_size=BATCH_SIZE)
               for label, backend, precision in ENGINES}
    # Warm-up: each way runs once before it is timed (engines also warm up in load()).
    per_crop_predict(model, snips[:2], size)()
    model.predict(np.zeros((BATCH_SIZE, size, size, 3), "float32"), verbose=0)
    for engine in engines.values():
        engine.load()
        engine_predict(engine, snips[:BATCH_SIZE])()

    runs = {
        "(a) one predict() per crop (AddaxAI MEWC adapter)": per_crop_predict(
            model, snips[:args.per_crop], size),
        "(b) image_dataset_from_directory + predict (mewc-predict)": mewc_predict(
            model, mewc_folder, size),
    }
    runs.update({label: engine_predict(engine, snips) for label, engine in engines.items()})
    decoded = np.stack([load_crop(path, size) for path in snips])
    for label, engine in engines.items():
        ceiling = f"    ceiling: {label.split(', ')[-1]} on decoded crops"
        runs[ceiling] = engine_only(engine, decoded)
    rates = dict.fromkeys(runs, 0.0)
    cpu_rates = dict.fromkeys(runs, 0.0)
    counts = dict.fromkeys(runs, 0)
    for _ in range(args.rounds):
        for label, run in runs.items():
            crops, seconds, cpu_seconds = timed(run)
            counts[label] = crops
            rates[label] = max(rates[label], crops / seconds)
            cpu_rates[label] = max(cpu_rates[label], crops / cpu_seconds)
    print(f"model {spec.kimm_name} {size}px, {CLASSES} classes; batch {BATCH_SIZE}; "
          f"best of {args.rounds} rounds; {machine()}; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'method':<62} {'crops':>6} {'crops/s':>8} {'crops/CPU-s':>12}")
    for label in runs:
        print(f"{label:<62} {counts[label]:>6} {rates[label]:>8.1f} {cpu_rates[label]:>12.1f}")
    for name, table in (("wall", rates), ("CPU", cpu_rates)):
        a, b = list(table.values())[:2]
        for label in engines:
            c = table[label]
            print(f"{name:>4} {label.split(', ')[-1]:<16} (c)/(a) = {c / a:5.1f}x (target >= 10x)"
                  f"   (c)/(b) = {c / b:4.1f}x (target >= 3x)")


if __name__ == "__main__":
    main()
