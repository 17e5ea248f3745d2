"""Bundles of kimm models with kimm's own layers (ConvNeXt, ViT, MobileViT, MobileOne): those
layers rebuilt from built-in Keras ones, so that ``model.keras`` loads without kimm and gives
the same outputs, and ``model.onnx`` (with exact GELU, grouped convolutions) matches it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.train.bundle_factory import random_kimm_classifier, tiny_training_images

CLASSES = ["tiger", "leopard", "deer"]
SIZE = 32
#: One model per kind of kimm layer: LayerScale, Attention + PositionEmbedding, 4-d Attention
#: (attention within patches), ReparameterizableConv2D; and RegNet's grouped convolutions
#: (built-in Keras, but a call tf2onnx cannot convert as Keras traces it); with an input size
#: each accepts.
MODELS = {"ConvNeXtAtto": 32, "VisionTransformerTiny16": 32, "MobileViTXXS": 64,
          "MobileOneS0": 32, "RegNetX002": 32}

_LOAD_WITHOUT_KIMM = """
import json, sys
import numpy as np
import keras
model = keras.saving.load_model(sys.argv[1])
kinds = set()
stack = list(model.layers)
while stack:
    layer = stack.pop()
    kinds.add(type(layer).__module__.split(".")[0])
    stack.extend(getattr(layer, "layers", []))
probs = model.predict(np.load(sys.argv[2]), verbose=0)
print(json.dumps({"kimm_imported": "kimm" in sys.modules, "modules": sorted(kinds),
                  "probs": probs.tolist()}))
"""


@pytest.mark.parametrize(("kimm_name", "size"), MODELS.items())
def test_bundle_loads_without_kimm_and_onnx_matches(kimm_name: str, size: int,
                                                    tmp_path: Path) -> None:
    import onnxruntime

    from tigertrap.train.export import export_bundle

    model = random_kimm_classifier(kimm_name, len(CLASSES), size)
    images, _ = tiny_training_images(CLASSES, size, seed=11, per_class=2)
    expected = np.asarray(model(images, training=False))
    bundle = export_bundle(model, CLASSES, tmp_path / "bundle", name="t", input_size=size)

    np.save(tmp_path / "images.npy", images)
    done = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_KIMM, str(bundle / "model.keras"),
                           str(tmp_path / "images.npy")], capture_output=True, text=True,
                          check=True, timeout=300)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["kimm_imported"] is False and loaded["modules"] == ["keras"]
    np.testing.assert_allclose(np.array(loaded["probs"]), expected, rtol=0, atol=1e-4)

    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"))
    actual = session.run(None, {session.get_inputs()[0].name: images})[0]
    assert np.max(np.abs(actual - expected)) <= 1e-4


def test_a_kimm_layer_without_a_built_in_equivalent_is_refused_naming_it() -> None:
    import keras
    from kimm.layers import LearnableAffine

    from tigertrap.train.export import ExportError, check_export

    inputs = keras.Input((SIZE, SIZE, 3))
    features = LearnableAffine(name="affine")(keras.layers.Conv2D(4, 3)(inputs))
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(features))
    with pytest.raises(ExportError, match="would need kimm.*affine.*LearnableAffine"):
        check_export(keras.Model(inputs, outputs), SIZE)
