"""``model.keras`` files that AddaxAI's own Keras can load.

AddaxAI runs Keras models in its ``tensorflow-v2`` environment, which pins TensorFlow 2.16 and
Keras 3.3.3 (``backend/app/ml/envs/tensorflow-v2/*/environment.yml`` in AddaxAI 7, the same
pins in AddaxAI 6's build workflows). A ``.keras`` file saved by a newer Keras does not load there:
newer Keras writes constructor arguments Keras 3.3 does not know (``input_axes`` and
``output_axes`` on initialisers, ``renorm`` on BatchNormalization, ``quantization_config`` on
Dense, ``antialias`` on Resizing, ...), which Keras 3.3 refuses, and writes a functional model's
single input or output as one ``[name, 0, 0]`` triple where Keras 3.3 reads a list of triples.

A ``.keras`` file is a zip of ``config.json``, ``metadata.json`` and ``model.weights.h5``.
:func:`write_compatible_keras` rewrites only ``config.json``: it removes those arguments where
they hold the value that means "the behaviour Keras 3.3 has anyway" and refuses the model when
one holds anything else. Weights are copied byte for byte.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["NEWER_ARGUMENTS", "AddaxKerasError", "compatible_config", "write_compatible_keras"]

CONFIG_MEMBER = "config.json"
#: Keras 3.3.3 is what AddaxAI's tensorflow-v2 environment installs.
TARGET_KERAS = "3.3.3"

#: Arguments newer than Keras 3.3, by class, with the values that keep Keras 3.3's behaviour.
NEWER_ARGUMENTS: dict[str, dict[str, tuple[Any, ...]]] = {
    "InputLayer": {"optional": (False,), "ragged": (False,)},
    "Dense": {"quantization_config": (None,), "lora_alpha": (None,)},
    "EinsumDense": {"quantization_config": (None,), "lora_alpha": (None,)},
    "Embedding": {"quantization_config": (None,), "lora_alpha": (None,)},
    "Conv1D": {"lora_alpha": (None,)},
    "Conv2D": {"lora_alpha": (None,)},
    "Conv3D": {"lora_alpha": (None,)},
    "Resizing": {"antialias": (False,)},
    "BatchNormalization": {"renorm": (False,)},
    "ZeroPadding1D": {"data_format": ("channels_last",)},
    "MultiHeadAttention": {"flash_attention": (None, False), "seed": (None,),
                           "sliding_window": (None,), "use_gate": (False,)},
}
#: Initialiser arguments newer than Keras 3.3 (fan axes; None = Keras 3.3's own choice).
NEWER_INITIALIZER_ARGUMENTS = {"input_axes": (None,), "output_axes": (None,)}
#: BatchNormalization's batch renormalisation: absent from Keras 3.3; harmless when off.
RENORM_ARGUMENTS = ("renorm", "renorm_clipping", "renorm_momentum")
FUNCTIONAL_CLASSES = ("Functional", "Model")
FUNCTIONAL_ENDPOINTS = ("input_layers", "output_layers")


class AddaxKerasError(ValueError):
    """A model that uses a feature AddaxAI's Keras (3.3) does not have."""


def _newer_arguments(node: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    name = node.get("class_name")
    if node.get("module") == "keras.initializers":
        return NEWER_INITIALIZER_ARGUMENTS
    if name == "BatchNormalization" and not node["config"].get("renorm", False):
        return {key: (node["config"].get(key),) for key in RENORM_ARGUMENTS}
    return NEWER_ARGUMENTS.get(str(name), {})


def _strip(node: dict[str, Any]) -> None:
    config = node["config"]
    for key, neutral in _newer_arguments(node).items():
        if key not in config:
            continue
        if config[key] not in neutral:
            raise AddaxKerasError(
                f"{node['class_name']} {config.get('name', '')!r} sets {key}={config[key]!r}, "
                f"which Keras {TARGET_KERAS} (AddaxAI's environment) cannot reproduce")
        del config[key]


def _nest_endpoints(config: dict[str, Any]) -> None:
    # Newer Keras writes a single input or output as ["layer", 0, 0]; Keras 3.3 reads a list of
    # such triples and would unpack the layer name's characters.
    for key in FUNCTIONAL_ENDPOINTS:
        value = config.get(key)
        if isinstance(value, list) and value and isinstance(value[0], str):
            config[key] = [value]


def compatible_config(config: Any) -> Any:
    """``config`` (a loaded ``config.json``) with every newer argument removed, in place."""
    if isinstance(config, dict):
        if "class_name" in config and isinstance(config.get("config"), dict):
            _strip(config)
            if config["class_name"] in FUNCTIONAL_CLASSES:
                _nest_endpoints(config["config"])
        for value in config.values():
            compatible_config(value)
    elif isinstance(config, list):
        for value in config:
            compatible_config(value)
    return config


def write_compatible_keras(source: str | os.PathLike[str],
                           target: str | os.PathLike[str]) -> Path:
    """Copy the ``.keras`` file ``source`` to ``target`` with a Keras-3.3-loadable config.

    Raises:
        AddaxKerasError: the model needs a feature Keras 3.3 does not have.
    """
    target = Path(target)
    partial = target.with_name(f".{target.name}.partial")
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(partial, "w") as new:
        for item in old.infolist():
            data = old.read(item)
            if item.filename == CONFIG_MEMBER:
                data = json.dumps(compatible_config(json.loads(data))).encode()
            new.writestr(item, data)
    partial.replace(target)
    return target
