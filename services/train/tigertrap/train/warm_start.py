"""Start a training model from a previous bundle's weights (retraining on corrected data).

The bundle's ``model.keras`` holds the same layers as the model train builds for the same
backbone, head and class count (export keeps the layer names; see :mod:`.export`), so weights
are copied layer by layer, matched by their path of names (``backbone/conv_stem_conv2d``) and
checked shape by shape. Layers that export rebuilt for portability (:mod:`.portable`: kimm's
LayerScale, PositionEmbedding, Attention, re-parameterised convolutions) have other weights than
the training layers; a model containing them cannot be warm-started, and the error names them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

__all__ = ["WarmStartError", "layer_weights", "warm_start"]


class WarmStartError(ValueError):
    """The previous bundle does not fit the model being trained; the message says how."""


def layer_weights(model: Any, prefix: str = "") -> dict[str, Any]:
    """``{name path: layer}`` for every layer holding weights, nested models flattened."""
    import keras

    found: dict[str, Any] = {}
    for layer in model.layers:
        path = f"{prefix}{layer.name}"
        if isinstance(layer, keras.Model):
            found.update(layer_weights(layer, f"{path}/"))
        elif layer.weights:
            found[path] = layer
    return found


def warm_start(model: keras.Model, bundle_dir: Path) -> int:
    """Copy the weights of ``bundle_dir``'s ``model.keras`` into ``model``; return the number
    of layers copied.

    Raises:
        WarmStartError: a layer of ``model`` has no counterpart of the same weight shapes in
            the bundle (another backbone, head, input size or class count).
    """
    import keras

    previous = keras.saving.load_model(Path(bundle_dir) / "model.keras", compile=False)
    source = layer_weights(previous)
    target = layer_weights(model)
    missing = [name for name in target if name not in source]
    mismatched = [name for name in target if name in source and
                  [tuple(w.shape) for w in target[name].weights] !=
                  [tuple(w.shape) for w in source[name].weights]]
    if missing or mismatched:
        shown = ", ".join((missing + mismatched)[:5])
        raise WarmStartError(
            f"{bundle_dir}: its model does not fit the one being trained ({len(missing)} "
            f"layers missing, {len(mismatched)} of other shapes, e.g. {shown}); retrain with "
            "the previous bundle's MODEL, HEAD, INPUT_SIZE and classes")
    for name, layer in target.items():
        layer.set_weights(source[name].get_weights())
    return len(target)
