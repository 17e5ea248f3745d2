"""A tiny classifier bundle whose answers are known: solid-colour crops, one colour per class.

Stands in for the train stage's ``build_tiny_bundle`` (tests/train/bundle_factory.py) when that
is not available: a kimm MobileNetV3 (weights=None) trained a few steps on noisy solid colours,
saved as ``model.keras`` and ``model.onnx`` (tf2onnx) with a class map and a manifest.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tigertrap.core.bundle import MODEL_KERAS, MODEL_ONNX, BundleManifest, write_manifest
from tigertrap.core.class_map import CLASS_MAP_FILE, ClassMap

__all__ = ["CLASS_COLOURS", "build_colour_bundle", "colour_crops"]

#: The colour each class is trained on (RGB); crops of these colours are classified as the class.
CLASS_COLOURS = {
    "tiger": (230, 120, 20),
    "leopard_cat": (30, 170, 40),
    "sambar": (40, 60, 210),
}
INPUT_SIZE = 64
SNIP_SIZE = 96
SAMPLES_PER_CLASS = 32
EPOCHS = 15
NOISE = 12.0


def colour_crops(colour: tuple[int, int, int], count: int, size: int = INPUT_SIZE,
                 seed: int = 0) -> np.ndarray:
    """``count`` noisy solid-colour crops ``(count, size, size, 3)`` as uint8."""
    rng = np.random.default_rng(seed)
    base = np.broadcast_to(np.asarray(colour, dtype=np.float32), (count, size, size, 3))
    return np.clip(base + rng.normal(0, NOISE, base.shape), 0, 255).astype(np.uint8)


def build_colour_bundle(out_dir: Path, *, seed: int = 0) -> Path:
    """Train and export the colour classifier into ``out_dir``; returns ``out_dir``."""
    import keras
    import kimm
    import tensorflow as tf
    import tf2onnx

    keras.utils.set_random_seed(seed)
    names = list(CLASS_COLOURS)
    x = np.concatenate([colour_crops(CLASS_COLOURS[name], SAMPLES_PER_CLASS, seed=seed + i)
                        for i, name in enumerate(names)]).astype(np.float32)
    y = np.repeat(np.arange(len(names)), SAMPLES_PER_CLASS)
    model = kimm.models.MobileNetV3W050Small(input_shape=(INPUT_SIZE, INPUT_SIZE, 3),
                                             weights=None, classes=len(names))
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=EPOCHS, batch_size=16, shuffle=True, verbose=0)

    out_dir.mkdir(parents=True, exist_ok=True)
    # A plain functional copy: loads with keras.saving.load_model without importing kimm.
    keras.Model(model.inputs, model.outputs).save(out_dir / MODEL_KERAS)
    spec = (tf.TensorSpec((None, INPUT_SIZE, INPUT_SIZE, 3), tf.float32, name="image"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17,
                               output_path=str(out_dir / MODEL_ONNX))
    ClassMap(names).save(out_dir / CLASS_MAP_FILE)
    manifest = BundleManifest(name="colours", input_size=INPUT_SIZE, crop_method="exact",
                              snip_size=SNIP_SIZE, backbone="MobileNetV3W050Small",
                              classes=names, tiger_threshold=0.5)
    write_manifest(out_dir, manifest, hash_files=[MODEL_KERAS, MODEL_ONNX, CLASS_MAP_FILE])
    return out_dir
