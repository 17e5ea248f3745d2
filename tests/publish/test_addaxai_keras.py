"""Model files for AddaxAI's Keras 3.3: same function, config Keras 3.3 can read.

``ADDAXAI_TF_PYTHON`` names a Python with AddaxAI's ``tensorflow-v2`` pins
(``addaxai-tf-requirements.txt``: TensorFlow 2.16.2, Keras 3.3.3, numpy 1.26.4, ...);
``scripts/test`` builds one in ``.venv-addaxai`` and sets it, so the published folders are also
loaded and run there. Run bare pytest without it and those two tests are skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.publish.conftest import CLASSES
from tests.train.bundle_factory import tiny_training_images
from tigertrap.publish.addaxai_keras import (
    AddaxKerasError,
    compatible_config,
    write_compatible_keras,
)
from tigertrap.publish.config import PublishSettings
from tigertrap.publish.publish import build_addaxai

HERE = Path(__file__).parent
ADDAXAI_PYTHON = os.environ.get("ADDAXAI_TF_PYTHON")
needs_addaxai_python = pytest.mark.skipif(
    not ADDAXAI_PYTHON, reason="set ADDAXAI_TF_PYTHON to a Python with AddaxAI's TF 2.16/Keras 3.3")


@pytest.fixture(scope="module")
def compatible(tiny_bundle_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_compatible_keras(tiny_bundle_source / "model.keras",
                                  tmp_path_factory.mktemp("keras") / "model.keras")


def _config(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def _nodes(config: object) -> list[dict]:
    found = []
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            found.append(config)
        for value in config.values():
            found += _nodes(value)
    elif isinstance(config, list):
        for value in config:
            found += _nodes(value)
    return found


def test_compatible_model_gives_the_same_probabilities(compatible: Path,
                                                       tiny_bundle_source: Path) -> None:
    import keras

    images, _ = tiny_training_images(CLASSES, 64, seed=3, per_class=1)
    original = keras.saving.load_model(tiny_bundle_source / "model.keras", compile=False)
    rewritten = keras.saving.load_model(compatible, compile=False)
    assert np.array_equal(original.predict(images, verbose=0), rewritten.predict(images, verbose=0))


def test_weights_are_copied_byte_for_byte(compatible: Path, tiny_bundle_source: Path) -> None:
    with zipfile.ZipFile(compatible) as new, \
            zipfile.ZipFile(tiny_bundle_source / "model.keras") as old:
        assert new.read("model.weights.h5") == old.read("model.weights.h5")


def test_config_has_no_argument_newer_than_keras_3_3(compatible: Path) -> None:
    for node in _nodes(_config(compatible)):
        assert not {"input_axes", "output_axes", "renorm", "quantization_config",
                    "optional"} & set(node["config"]), node["class_name"]
        if node["class_name"] == "Functional":
            assert all(isinstance(item, list) for item in node["config"]["input_layers"])
            assert all(isinstance(item, list) for item in node["config"]["output_layers"])


@pytest.mark.parametrize(("class_name", "key", "value"), [
    ("BatchNormalization", "renorm", True),
    ("Resizing", "antialias", True),
    ("Dense", "quantization_config", {"mode": "int8"}),
])
def test_a_newer_feature_in_use_is_refused(class_name: str, key: str, value: object) -> None:
    node = {"module": "keras.layers", "class_name": class_name,
            "config": {"name": "layer_x", key: value}}
    with pytest.raises(AddaxKerasError, match=f"layer_x.*{key}"):
        compatible_config({"layers": [node]})


@pytest.fixture(scope="module")
def addaxai_folders(tiny_bundle_source: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("addaxai-env") / "out"
    build_addaxai(tiny_bundle_source, out, PublishSettings())
    return out


def _run_in_addaxai_python(code: str) -> str:
    assert ADDAXAI_PYTHON is not None
    done = subprocess.run([ADDAXAI_PYTHON, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False, cwd=HERE)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@needs_addaxai_python
def test_v6_folder_labels_correctly_in_addaxai_keras(addaxai_folders: Path) -> None:
    code = ("import json, sys; sys.path.insert(0, '.');"
            "from addaxai_mewc import MewcKerasAdapter;"
            f"a = MewcKerasAdapter(__import__('pathlib').Path({str(addaxai_folders / 'v6')!r}));"
            "import keras; print(json.dumps([keras.__version__, a.class_ids]))")
    version, class_ids = json.loads(_run_in_addaxai_python(code))
    assert version == "3.3.3"
    assert class_ids == CLASSES


@needs_addaxai_python
def test_v7_inference_runs_in_addaxai_keras(addaxai_folders: Path, fixtures_dir: Path) -> None:
    image = (fixtures_dir / "md_outputs/microsoft_CameraTraps_test_images"
             / "channel_islands_camera_traps_loc-h500ee07133550_010_643.jpg")
    assert ADDAXAI_PYTHON is not None
    done = subprocess.run([ADDAXAI_PYTHON, str(HERE / "addaxai_v7_runner.py"),
                           str(addaxai_folders / "v7"), str(image),
                           "0.5854", "0.5333", "0.1807", "0.2212"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert sorted(name for name, _ in report["classification"]) == sorted(CLASSES)
    assert report["missing"] == []


_PREDICT_IN_ADDAXAI = """
import numpy as np
import keras
model = keras.saving.load_model({model!r}, compile=False)
np.save({probs!r}, model.predict(np.load({images!r}), verbose=0))
print(keras.__version__)
"""


@needs_addaxai_python
@pytest.mark.parametrize("kimm_name", ["ConvNeXtAtto", "VisionTransformerTiny16"])
def test_convnext_and_vit_model_files_run_in_addaxai_keras(kimm_name: str,
                                                            tmp_path: Path) -> None:
    from tests.train.bundle_factory import random_kimm_classifier
    from tigertrap.train.export import export_bundle

    size = 32
    model = random_kimm_classifier(kimm_name, len(CLASSES), size)
    bundle = export_bundle(model, CLASSES, tmp_path / "bundle", name="t", input_size=size)
    compatible = write_compatible_keras(bundle / "model.keras", tmp_path / "model.keras")
    images, _ = tiny_training_images(CLASSES, size, seed=3, per_class=1)
    np.save(tmp_path / "images.npy", images)
    version = _run_in_addaxai_python(_PREDICT_IN_ADDAXAI.format(
        model=str(compatible), images=str(tmp_path / "images.npy"),
        probs=str(tmp_path / "probs.npy")))
    assert version == "3.3.3"
    expected = np.asarray(model(images, training=False))
    np.testing.assert_allclose(np.load(tmp_path / "probs.npy"), expected, rtol=0, atol=1e-5)
