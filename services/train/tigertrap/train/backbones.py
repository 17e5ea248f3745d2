"""Backbones: kimm image models named by MEWC's short codes or by kimm class name.

MEWC's ``MODEL`` key names a backbone with a three-letter code (``EN0``, ``ENS``, ``CNT``,
``VTS`` ...) and fixes its input size (mewc-flow's ``model_img_size_mapping``). Any other kimm
model can be named by its class name (``MobileNetV3W050Small``); its input size is then kimm's
default for it unless ``INPUT_SIZE`` is set.

The backbone is returned as a plain ``keras.Model`` over kimm's layers, so the trained model (and
its checkpoints) never contains a kimm class at the top and reloads with plain Keras. Weights are
``imagenet`` (kimm's download, or its cache when offline), ``none``, or the path of a local
weights file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

__all__ = [
    "MEWC_BACKBONES",
    "BackboneError",
    "BackboneSpec",
    "block_starts",
    "build_backbone",
    "resolve_backbone",
]

#: MEWC short code -> (kimm class name, input size), as in mewc-train and mewc-flow.
MEWC_BACKBONES: dict[str, tuple[str, int]] = {
    "EN0": ("EfficientNetV2B0", 224),
    "EN2": ("EfficientNetV2B2", 260),
    "ENS": ("EfficientNetV2S", 384),
    "ENM": ("EfficientNetV2M", 480),
    "ENL": ("EfficientNetV2L", 480),
    "ENX": ("EfficientNetV2XL", 512),
    "CNP": ("ConvNeXtPico", 288),
    "CNN": ("ConvNeXtNano", 288),
    "CNT": ("ConvNeXtTiny", 384),
    "CNS": ("ConvNeXtSmall", 384),
    "CNB": ("ConvNeXtBase", 384),
    "CNL": ("ConvNeXtLarge", 384),
    "VTT": ("VisionTransformerTiny16", 384),
    "VTS": ("VisionTransformerSmall16", 384),
    "VTB": ("VisionTransformerBase16", 384),
    "VTL": ("VisionTransformerLarge16", 384),
}
#: Input size of a kimm model named by class name when neither MEWC nor the user fixes one.
DEFAULT_INPUT_SIZE = 224
#: Layer-name prefixes that number a backbone's blocks (EfficientNet, MobileNet, ViT: blocks_i;
#: ConvNeXt: stages_i; ResNet: layeri; RegNet: si).
_BLOCK_NAME = re.compile(r"^(blocks_|stages_|layer|s)(\d+)_")


class BackboneError(ValueError):
    """An unknown backbone name, or a weights source that cannot be used."""


@dataclass(frozen=True)
class BackboneSpec:
    """A resolved backbone: kimm class name, MEWC code (if any) and input size."""

    kimm_name: str
    code: str | None
    input_size: int


def _kimm_models() -> dict[str, type]:
    import kimm

    return {name: getattr(kimm.models, name) for name in kimm.list_models()}


def resolve_backbone(name: str, input_size: int | None = None) -> BackboneSpec:
    """Resolve a MEWC code (any case) or a kimm class name; ``input_size`` overrides MEWC's."""
    code = name.strip().upper()
    if code in MEWC_BACKBONES:
        kimm_name, size = MEWC_BACKBONES[code]
        return BackboneSpec(kimm_name, code, input_size or size)
    models = _kimm_models()
    matches = [known for known in models if known.lower() == name.strip().lower()]
    if not matches:
        raise BackboneError(
            f"MODEL {name!r} is neither a MEWC code ({', '.join(MEWC_BACKBONES)}) nor a kimm "
            "model (see kimm.list_models())")
    return BackboneSpec(matches[0], None, input_size or DEFAULT_INPUT_SIZE)


def _weights_argument(weights: str | None) -> tuple[str | None, Path | None]:
    """(kimm ``weights=`` value, local file to load afterwards)."""
    if weights is None or str(weights).lower() in {"", "none", "null", "random"}:
        return None, None
    if str(weights).lower() == "imagenet":
        return "imagenet", None
    path = Path(weights)
    if not path.is_file():
        raise BackboneError(f"WEIGHTS {weights!r}: give 'imagenet', 'none' or an existing "
                            "weights file (.weights.h5 or .keras)")
    return None, path


def build_backbone(spec: BackboneSpec, weights: str | None = "imagenet") -> keras.Model:
    """The feature extractor of ``spec``: raw RGB 0-255 in (kimm's preprocessing inside),
    unpooled features out, as a plain ``keras.Model`` named ``backbone``.

    Raises:
        BackboneError: ImageNet weights that cannot be downloaded or found in kimm's cache, or
            a local weights file that does not fit the architecture.
    """
    import keras

    kimm_weights, local_file = _weights_argument(weights)
    constructor = _kimm_models()[spec.kimm_name]
    try:
        kimm_model = constructor(input_shape=(spec.input_size, spec.input_size, 3),
                                 include_top=False, include_preprocessing=True,
                                 weights=kimm_weights)
    except Exception as error:  # kimm raises URLError/HTTPError/OSError when offline
        raise BackboneError(
            f"{spec.kimm_name}: ImageNet weights could not be loaded ({error}); run once "
            "online to fill kimm's cache, give a local WEIGHTS file, or set WEIGHTS: none"
        ) from error
    backbone = keras.Model(kimm_model.inputs[0], kimm_model.outputs[0], name="backbone")
    if local_file is not None:
        _load_local_weights(backbone, local_file)
    return backbone


def _load_local_weights(backbone: keras.Model, path: Path) -> None:
    import keras

    try:
        if path.suffix == ".keras":
            source = keras.saving.load_model(path, compile=False)
            inner = source.get_layer("backbone") if "backbone" in {
                layer.name for layer in source.layers} else source
            backbone.set_weights(inner.get_weights())
        else:
            backbone.load_weights(path)
    except (ValueError, KeyError) as error:
        raise BackboneError(f"WEIGHTS {path}: does not fit {backbone.name}: {error}") from error


def block_starts(backbone: keras.Model) -> list[str]:
    """Name of the first layer of each numbered block, in network order.

    "Unfreeze the last BUF blocks" means: every layer from ``block_starts(b)[-BUF]`` onwards.
    """
    starts: list[str] = []
    seen: set[tuple[str, str]] = set()
    for layer in backbone.layers:
        match = _BLOCK_NAME.match(layer.name)
        if match and match.groups() not in seen:
            seen.add(match.groups())
            starts.append(layer.name)
    return starts
