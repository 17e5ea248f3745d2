"""Bundles of kimm models with kimm's own layers (ConvNeXt, ViT, MobileViT, MobileOne): those
layers rebuilt from built-in Keras ones, so that ``model.keras`` loads without kimm and gives
the same outputs, and ``model.onnx`` (with exact GELU, grouped convolutions) matches it."""

from __future__ import annotations

import json
import subprocess
import sys

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

#: Loads each ``model.keras`` named on the command line (pairs: model, images .npy) in a
#: process that never imports kimm; one process for all models (TensorFlow starts once).
_LOAD_WITHOUT_KIMM = """
import json, sys
import numpy as np
import keras
results = []
for model_path, images_path in zip(sys.argv[1::2], sys.argv[2::2]):
    model = keras.saving.load_model(model_path)
    kinds = set()
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        kinds.add(type(layer).__module__.split(".")[0])
        stack.extend(getattr(layer, "layers", []))
    probs = model.predict(np.load(images_path), verbose=0)
    results.append({"modules": sorted(kinds), "probs": probs.tolist()})
print(json.dumps({"kimm_imported": "kimm" in sys.modules, "results": results}))
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """Each of :data:`MODELS` exported as a bundle: its Keras outputs on probe images, what
    the bundle's ``model.keras`` gives in a process without kimm, and its ``model.onnx``."""
    import onnxruntime

    from tigertrap.train.export import export_bundle

    root = tmp_path_factory.mktemp("portable")
    cases: dict[str, dict[str, object]] = {}
    arguments = []
    for kimm_name, size in MODELS.items():
        model = random_kimm_classifier(kimm_name, len(CLASSES), size)
        images, _ = tiny_training_images(CLASSES, size, seed=11, per_class=2)
        bundle = export_bundle(model, CLASSES, root / kimm_name, name="t", input_size=size)
        np.save(root / f"{kimm_name}.npy", images)
        arguments += [str(bundle / "model.keras"), str(root / f"{kimm_name}.npy")]
        session = onnxruntime.InferenceSession(str(bundle / "model.onnx"))
        cases[kimm_name] = {
            "expected": np.asarray(model(images, training=False)),
            "onnx": session.run(None, {session.get_inputs()[0].name: images})[0]}
    done = subprocess.run([sys.executable, "-c", _LOAD_WITHOUT_KIMM, *arguments],
                          capture_output=True, text=True, check=True, timeout=600)
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded["kimm_imported"] is False
    for case, result in zip(cases.values(), loaded["results"], strict=True):
        case["modules"], case["loaded"] = result["modules"], np.array(result["probs"])
    return cases


@pytest.mark.parametrize("kimm_name", MODELS)
def test_bundle_loads_without_kimm_and_onnx_matches(
        kimm_name: str, exported: dict[str, dict[str, object]]) -> None:
    case = exported[kimm_name]
    expected = case["expected"]
    assert case["modules"] == ["keras"]
    np.testing.assert_allclose(case["loaded"], expected, rtol=0, atol=1e-4)
    assert np.max(np.abs(case["onnx"] - expected)) <= 1e-4


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
