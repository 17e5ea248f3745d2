"""The classifier bundle train writes: plain-Keras loading, ONNX equivalence, manifest sums."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.train.bundle_factory import build_tiny_bundle, tiny_training_images
from tigertrap.core.bundle import verify_bundle
from tigertrap.core.class_map import ClassMap

CLASSES = ["tiger", "leopard", "deer"]
SIZE = 64

_KERAS_WITHOUT_KIMM = """
import json, sys
import numpy as np
import keras
model = keras.saving.load_model(sys.argv[1])
probs = model.predict(np.load(sys.argv[2]), verbose=0)
print(json.dumps({"kimm_imported": "kimm" in sys.modules, "probs": probs.tolist()}))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_bundle(tmp_path_factory.mktemp("bundle") / "tiny", CLASSES, SIZE)


@pytest.fixture(scope="module")
def probe(bundle: Path) -> np.ndarray:
    images, _ = tiny_training_images(CLASSES, SIZE, seed=7, per_class=2)
    return images


def test_bundle_files_match_their_manifest_sums(bundle: Path) -> None:
    manifest, class_map = verify_bundle(bundle)
    assert set(manifest.files) == {"model.keras", "model.onnx", "class_map.yaml"}
    assert class_map == ClassMap(CLASSES)
    assert manifest.input_size == SIZE and manifest.crop_method == "exact"


def test_keras_model_loads_without_kimm_and_gives_the_same_outputs(
        bundle: Path, probe: np.ndarray, tmp_path: Path) -> None:
    import keras

    np.save(tmp_path / "probe.npy", probe)
    done = subprocess.run([sys.executable, "-c", _KERAS_WITHOUT_KIMM, str(bundle / "model.keras"),
                           str(tmp_path / "probe.npy")], capture_output=True, text=True,
                          check=True, timeout=300)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    expected = keras.saving.load_model(bundle / "model.keras").predict(probe, verbose=0)
    assert result["kimm_imported"] is False
    np.testing.assert_allclose(np.array(result["probs"]), expected, atol=1e-6)


def test_onnx_model_matches_keras_within_1e_4(bundle: Path, probe: np.ndarray) -> None:
    import keras
    import onnxruntime

    expected = keras.saving.load_model(bundle / "model.keras").predict(probe, verbose=0)
    session = onnxruntime.InferenceSession(str(bundle / "model.onnx"))
    actual = session.run(None, {session.get_inputs()[0].name: probe})[0]
    assert np.max(np.abs(actual - expected)) <= 1e-4


def test_tiny_bundle_predictions_follow_the_class_of_the_image(
        bundle: Path, probe: np.ndarray) -> None:
    import keras

    _, labels = tiny_training_images(CLASSES, SIZE, seed=7, per_class=2)
    probs = keras.saving.load_model(bundle / "model.keras").predict(probe, verbose=0)
    assert (probs.argmax(axis=1) == labels).mean() >= 0.8


def test_export_refuses_a_model_whose_outputs_do_not_match_the_class_map(
        bundle: Path, tmp_path: Path) -> None:
    import keras

    from tigertrap.train.export import ExportError, export_bundle

    model = keras.saving.load_model(bundle / "model.keras")
    with pytest.raises(ExportError, match="3 outputs"):
        export_bundle(model, ["tiger", "deer"], tmp_path / "bad", name="bad", input_size=SIZE)
    assert not (tmp_path / "bad").exists()


def test_backbone_that_cannot_be_exported_is_refused_before_training(
        image_folders: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.train.conftest import tiny_mewc_settings
    from tigertrap.train import portable
    from tigertrap.train.export import ExportError
    from tigertrap.train.training import train

    # Every kimm family exports; take away the rebuild of ConvNeXt's LayerScale to get one
    # that does not.
    monkeypatch.delitem(portable.REPLACEMENTS, "LayerScale")
    settings = tiny_mewc_settings(image_folders / "ds", tmp_path / "run", model="ConvNeXtAtto")
    with pytest.raises(ExportError, match="LayerScale"):
        train(settings)
    assert not (tmp_path / "run" / "checkpoints").exists()
