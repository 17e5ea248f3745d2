"""The classifier: a backbone plus a head, and the freezing rules the recipes use.

Two heads, one per recipe:

- ``mewc`` (mewc-train's ``build_sequential_model``): pooling -> dropout ``base_dropout`` ->
  dense bottleneck -> ELU -> dropout ``top_dropout`` -> dense softmax ``classification``;
- ``terainet`` (alexvmt/TeraiNet): pooling -> dropout ``top_dropout`` (0.2) -> dense softmax.

The model takes raw RGB 0-255 at a fixed square size (kimm's preprocessing is inside the
backbone) and always ends in a softmax over the class map's order, also for two classes, so every
consumer reads one probability per class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from tigertrap.train.backbones import block_starts

if TYPE_CHECKING:
    import keras

__all__ = [
    "DROPOUT_LAYERS",
    "OUTPUT_LAYER",
    "build_classifier",
    "freeze_backbone",
    "set_dropout",
    "unfreeze_last_blocks",
]

Head = Literal["mewc", "terainet"]
OUTPUT_LAYER = "classification"
INPUT_NAME = "image"
#: The dropout layers of the heads; progressive stages set their rate.
DROPOUT_LAYERS = ("base_dropout", "top_dropout")
#: mewc-train's bottleneck width rule: small heads for few classes or narrow features.
_SMALL_BOTTLENECK, _MEDIUM_BOTTLENECK, _LARGE_BOTTLENECK = 256, 384, 512
_VIT_SMALL_BOTTLENECK, _VIT_NARROW_FEATURES = 128, 384
_FEW_CLASSES = 25
_MEDIUM_FEATURES = 768


def _bottleneck_width(features: int, num_classes: int, tokens: bool) -> int:
    if tokens:
        if features <= _VIT_NARROW_FEATURES:
            return _VIT_SMALL_BOTTLENECK
        if num_classes <= _FEW_CLASSES:
            return _SMALL_BOTTLENECK
        return _MEDIUM_BOTTLENECK if features == _MEDIUM_FEATURES else _LARGE_BOTTLENECK
    if num_classes <= _FEW_CLASSES or features < _MEDIUM_FEATURES:
        return _SMALL_BOTTLENECK
    return _MEDIUM_BOTTLENECK if features == _MEDIUM_FEATURES else _LARGE_BOTTLENECK


def build_classifier(backbone: keras.Model, num_classes: int, *, head: Head = "mewc",
                     dropout: float = 0.1, name: str = "classifier") -> keras.Model:
    """Put ``head`` on ``backbone``; the backbone starts frozen (recipes unfreeze it)."""
    import keras
    from keras import layers

    size = backbone.input_shape[1]
    inputs = keras.Input((size, size, 3), name=INPUT_NAME)
    features = backbone(inputs)
    tokens = len(backbone.output_shape) == 3  # ViT: (batch, tokens, width)
    pool = layers.GlobalAveragePooling1D if tokens else layers.GlobalAveragePooling2D
    x = pool(name="global_average_pooling")(features)
    if head == "mewc":
        width = _bottleneck_width(int(backbone.output_shape[-1]), num_classes, tokens)
        x = layers.Dropout(dropout, name="base_dropout")(x)
        x = layers.Dense(width, name="compression_bottleneck")(x)
        x = layers.ELU(alpha=1.0, name="compression_elu")(x)
    x = layers.Dropout(dropout, name="top_dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name=OUTPUT_LAYER)(x)
    backbone.trainable = False
    return keras.Model(inputs, outputs, name=name)


def freeze_backbone(model: keras.Model) -> None:
    """Freeze the whole backbone (BatchNorm in inference mode); the head stays trainable."""
    model.get_layer("backbone").trainable = False


def unfreeze_last_blocks(model: keras.Model, blocks: int) -> list[str]:
    """Make the last ``blocks`` backbone blocks and everything after them trainable, keeping
    every BatchNormalization frozen. ``0`` keeps the backbone frozen; ``-1`` unfreezes it all
    (BatchNorm still frozen). Returns the first layer name of each unfrozen block.

    Raises:
        ValueError: more blocks asked for than the backbone has.
    """
    from keras import layers

    backbone = model.get_layer("backbone")
    if blocks == 0:
        backbone.trainable = False
        return []
    starts = block_starts(backbone)
    if blocks > len(starts):
        raise ValueError(f"BUF={blocks} but {backbone.name} has only {len(starts)} blocks")
    chosen = starts[-blocks:] if blocks > 0 else starts
    backbone.trainable = True
    unfreezing = blocks < 0
    for layer in backbone.layers:
        unfreezing = unfreezing or layer.name == chosen[0]
        is_norm = isinstance(layer, layers.BatchNormalization)
        layer.trainable = unfreezing and not is_norm
    return chosen


def set_dropout(model: keras.Model, rate: float) -> None:
    """Set the rate of the head's dropout layers (the model must be recompiled to take it)."""
    for name in DROPOUT_LAYERS:
        try:
            model.get_layer(name).rate = float(rate)
        except ValueError:  # the terainet head has no base_dropout
            continue
