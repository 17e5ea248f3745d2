"""Backbone weights: ImageNet from kimm's cache without network, a local file, or none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.train.bundle_factory import build_tiny_bundle
from tigertrap.train.backbones import build_backbone, resolve_backbone

_IMAGENET_FROM_CACHE = """
import os, sys
from pathlib import Path
os.environ["KERAS_HOME"] = sys.argv[1]
import keras, kimm, numpy as np
keras.utils.set_random_seed(5)
name, _, file_name = kimm.models.MobileNetV3W050Small.available_weights[0]
cached = kimm.models.MobileNetV3W050Small(weights=None, include_top=False,
                                          input_shape=(32, 32, 3))
(Path(sys.argv[1]) / "kimm_models").mkdir(parents=True)
cached.save(Path(sys.argv[1]) / "kimm_models" / file_name)
from tigertrap.train.backbones import build_backbone, resolve_backbone
loaded = build_backbone(resolve_backbone("MobileNetV3W050Small", 32), "imagenet")
same = all(np.array_equal(a, b) for a, b in zip(cached.get_weights(), loaded.get_weights()))
print("same" if same else "different")
"""


def test_imagenet_weights_come_from_kimms_cache_when_offline(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _IMAGENET_FROM_CACHE, str(tmp_path / "keras")],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "same"


def test_local_weights_file_loads_a_previous_models_backbone(tmp_path: Path) -> None:
    import keras

    bundle = build_tiny_bundle(tmp_path / "previous", ["tiger", "leopard", "deer"])
    previous = keras.saving.load_model(bundle / "model.keras").get_layer("backbone")
    spec = resolve_backbone("MobileNetV3W050Small", 64)
    loaded = build_backbone(spec, str(bundle / "model.keras"))
    fresh = build_backbone(spec, "none")
    assert all(np.array_equal(a, b) for a, b in zip(previous.get_weights(),
                                                    loaded.get_weights(), strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(previous.get_weights(),
                                                        fresh.get_weights(), strict=True))
