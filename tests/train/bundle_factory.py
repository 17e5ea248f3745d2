"""A tiny trained classifier bundle for tests of train, classify and publish.

``build_tiny_bundle`` trains a MobileNetV3 (kimm, random initial weights) for a few steps on
synthetic images whose classes differ by colour and stripe direction, so its predictions really
differ per class, and writes it with :func:`tigertrap.train.export.export_bundle`. A built bundle
is cached on disk (keyed by the arguments, the source of everything that builds, exports and checks
it, and the versions of the libraries that write it), so a test session pays for training once;
.ci/run empties the cache first, so CI always builds it fresh.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tests.train.synthetic import class_images
from tigertrap.core.bundle import load_manifest, write_manifest

if TYPE_CHECKING:
    import keras

__all__ = ["TINY_BACKBONE", "build_tiny_bundle", "random_kimm_classifier", "tiny_training_images"]

TINY_BACKBONE = "MobileNetV3W050Small"
BATCH = 16
LEARNING_RATE = 3e-3
#: BatchNorm must learn its moving statistics within a few steps for inference to work.
BN_MOMENTUM = 0.5
IMAGES_PER_CLASS = 24
CACHE_ROOT = Path(tempfile.gettempdir()) / "tigertrap-tiny-bundles"


def tiny_training_images(class_names: list[str], input_size: int, seed: int,
                         per_class: int = IMAGES_PER_CLASS) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 0-255, integer labels) for ``class_names`` in order."""
    rng = np.random.default_rng(seed)
    parts = [class_images(i, len(class_names), per_class, input_size, rng)
             for i in range(len(class_names))]
    labels = np.repeat(np.arange(len(class_names)), per_class)
    return np.concatenate(parts).astype("float32"), labels


def _cache_key(class_names: list[str], input_size: int, steps: int, seed: int) -> str:
    """Everything that shapes the artifact: the code that builds, exports and checks it, and the
    versions of the libraries that write it (an older artifact must never stand in)."""
    from importlib.metadata import version

    from tigertrap.core import bundle, class_map
    from tigertrap.train import backbones, export, model, portable

    digest = hashlib.sha256()
    for module in (backbones, export, model, portable, bundle, class_map):
        digest.update(inspect.getsource(module).encode())
    digest.update(Path(__file__).read_bytes())
    digest.update(inspect.getsource(class_images).encode())
    for package in ("keras", "tensorflow", "tf2onnx", "onnx", "kimm", "numpy"):
        digest.update(f"{package}=={version(package)}".encode())
    digest.update(repr((class_names, input_size, steps, seed)).encode())
    return digest.hexdigest()[:16]


def _train_and_export(out_dir: Path, class_names: list[str], input_size: int, steps: int,
                      seed: int) -> None:
    import keras

    from tigertrap.train.backbones import build_backbone, resolve_backbone
    from tigertrap.train.export import export_bundle
    from tigertrap.train.model import build_classifier

    keras.utils.set_random_seed(seed)
    backbone = build_backbone(resolve_backbone(TINY_BACKBONE, input_size), weights=None)
    model = build_classifier(backbone, len(class_names), head="terainet", dropout=0.0)
    backbone.trainable = True
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE),
                  loss="sparse_categorical_crossentropy")
    images, labels = tiny_training_images(class_names, input_size, seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = rng.choice(len(labels), BATCH, replace=False)
        model.train_on_batch(images[batch], labels[batch])
    export_bundle(model, class_names, out_dir, name="tiny", input_size=input_size,
                  backbone=TINY_BACKBONE, recipe="tiny-test", metrics={}, tiger_threshold=None,
                  config_hash=f"tiny-{seed}")


def build_tiny_bundle(out_dir: Path, class_names: list[str], input_size: int = 64,
                      steps: int = 20, seed: int = 0) -> Path:
    """Write a tiny trained bundle for ``class_names`` (output order) to ``out_dir``."""
    out_dir = Path(out_dir)
    cached = CACHE_ROOT / _cache_key(list(class_names), input_size, steps, seed)
    if not (cached / "manifest.json").is_file():
        CACHE_ROOT.mkdir(parents=True, exist_ok=True)
        building = Path(tempfile.mkdtemp(prefix=f".{cached.name}.", dir=CACHE_ROOT)) / "bundle"
        _train_and_export(building, list(class_names), input_size, steps, seed)
        # Another process may have finished the same bundle first; either copy will do.
        with contextlib.suppress(OSError):
            building.rename(cached)
        shutil.rmtree(building.parent, ignore_errors=True)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(cached, out_dir)
    manifest = load_manifest(out_dir)
    write_manifest(out_dir, manifest.model_copy(update={"name": out_dir.name}))
    return out_dir


def random_kimm_classifier(kimm_name: str, classes: int, input_size: int) -> keras.Model:
    """An untrained mewc classifier on ``kimm_name`` whose kimm-specific layers hold random
    weights of a trained model's scale (kimm starts layer scales at 1e-5 and the class token at
    0, which would hide a wrong weight mapping), its output layer scaled so that the
    probabilities are far from 0 and 1 (saturated ones would hide differences too)."""
    import keras

    from tigertrap.train.backbones import build_backbone, resolve_backbone
    from tigertrap.train.model import OUTPUT_LAYER, build_classifier

    model = build_classifier(build_backbone(resolve_backbone(kimm_name, input_size), "none"),
                             classes)
    rng = np.random.default_rng(5)
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []))
        if not type(layer).__module__.startswith("kimm"):
            continue
        for weight in layer.weights:
            shape, name = tuple(weight.shape), weight.path.split("/")[-1]
            if name in ("gamma", "moving_variance"):
                value = rng.uniform(0.5, 1.5, shape)
            elif name in ("beta", "moving_mean"):
                value = rng.normal(0.0, 0.1, shape)
            elif name == "kernel":
                value = rng.normal(0.0, np.prod(shape[:-1]) ** -0.5, shape)
            else:
                value = rng.normal(0.0, 0.2, shape)
            weight.assign(value.astype("float32"))
    output = model.get_layer(OUTPUT_LAYER)
    images, _ = tiny_training_images(["a", "b"], input_size, seed=1, per_class=2)
    inputs = np.asarray(keras.Model(model.inputs, output.input)(images))
    logits = inputs @ np.asarray(output.kernel)
    output.kernel.assign(np.asarray(output.kernel) / max(float(logits.std()), 1e-6))
    return model
