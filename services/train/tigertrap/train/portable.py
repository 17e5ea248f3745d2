"""kimm models rebuilt from built-in Keras layers only, so ``model.keras`` loads without kimm.

kimm's ConvNeXt and ViT contain three layers of kimm's own, which plain
``keras.saving.load_model`` (and AddaxAI's mewc-keras adapter) cannot deserialise. Each is
replaced by built-in layers that compute the same function from the same weights:

- ``LayerScale`` (a learned gain per channel): a 1×1 ``DepthwiseConv2D`` without bias on
  feature maps, an ``EinsumDense`` ``abc,c->abc`` on token sequences;
- ``PositionEmbedding`` (class token, then a learned embedding per position): ``ZeroPadding1D``
  puts an empty token first, then an ``EinsumDense`` with a unit kernel adds one bias per token
  and channel, whose first row is the class token plus its position embedding;
- ``Attention`` (one fused qkv projection; ViT, and MobileViT over the pixels of each patch):
  ``MultiHeadAttention`` with the qkv kernel split into query, key and value per head;
- ``ReparameterizableConv2D`` (RepVGG, MobileOne, GhostNetV3: parallel conv and BatchNorm
  branches): the single ``Conv2D`` or ``DepthwiseConv2D`` (with bias) that kimm's own
  ``get_reparameterized_weights`` fuses them into, after the same zero padding and before the
  same activation — the form these models are meant to be deployed in.

Each replacement is a small functional model named like the layer it replaces. Every other layer
is reused as it is. A layer of any other foreign class is an error naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras

__all__ = ["PortableError", "foreign_layers", "portable_model"]

#: Modules whose layer classes plain Keras can deserialise.
KERAS_MODULE = "keras."

#: A built-in replacement and the call that gives it the replaced layer's weights (run once
#: the rebuilt model exists, since layers get their weights when first called).
Replacement = tuple["keras.layers.Layer", Callable[[], None]]


class PortableError(RuntimeError):
    """The model holds a layer that has no built-in Keras equivalent here."""


def foreign_layers(model: keras.Model) -> list[str]:
    """Class names of the layers (at any depth) that plain Keras cannot load."""
    found: set[str] = set()
    stack: list[Any] = list(model.layers)
    while stack:
        layer = stack.pop()
        module = type(layer).__module__
        if not module.startswith(KERAS_MODULE):
            found.add(f"{module}.{type(layer).__name__}")
        stack.extend(getattr(layer, "layers", []))
    return sorted(found)


def _wrapped(layer: Any, build: Callable[[keras.KerasTensor], keras.KerasTensor]
             ) -> keras.Model:
    """A functional model with ``layer``'s input shape and name around ``build``."""
    import keras

    inputs = keras.Input(tuple(layer.input.shape[1:]))
    return keras.Model(inputs, build(inputs), name=layer.name)


def _layer_scale(layer: Any) -> Replacement:
    from keras import layers

    gamma = np.asarray(layer.gamma.numpy())
    shape = tuple(layer.input.shape[1:])
    if len(shape) == 3 and list(layer.axis) in ([-1], [len(shape)]):
        scale = layers.DepthwiseConv2D(1, use_bias=False, name=f"{layer.name}_gain")
        weights = [gamma.reshape(1, 1, -1, 1)]
    elif len(shape) == 2 and list(layer.axis) in ([-1], [len(shape)]):
        scale = layers.EinsumDense("abc,c->abc", output_shape=shape, name=f"{layer.name}_gain")
        weights = [gamma]
    else:
        raise PortableError(f"{layer.name}: LayerScale over axes {layer.axis} of a "
                            f"{len(shape) + 1}-d input has no built-in equivalent here")
    return _wrapped(layer, scale), lambda: scale.set_weights(weights)


def _position_embedding(layer: Any) -> Replacement:
    from keras import layers

    table = np.array(layer.pos_embed.numpy()[0], dtype="float32")
    table[0] += np.asarray(layer.cls_token.numpy())[0, 0]
    tokens, width = table.shape
    add = layers.EinsumDense("abc,c->abc", output_shape=(tokens, width), bias_axes="bc",
                             name=f"{layer.name}_add")
    pad = layers.ZeroPadding1D((1, 0), name=f"{layer.name}_class_token")
    return (_wrapped(layer, lambda x: add(pad(x))),
            lambda: add.set_weights([np.ones(width, "float32"), table]))


def _attention(layer: Any) -> Replacement:
    from keras import layers

    rank = len(layer.input.shape)
    width = int(layer.input.shape[-1])
    heads, head_width = int(layer.num_heads), int(layer.head_dim)
    if rank not in (3, 4) or heads * head_width != width:
        raise PortableError(f"{layer.name}: Attention on a {rank}-d input of width {width} "
                            "has no built-in equivalent here")
    qkv_kernel = np.asarray(layer.qkv.kernel.numpy())
    qkv_bias = (np.asarray(layer.qkv.bias.numpy()) if layer.qkv.use_bias
                else np.zeros(3 * width, "float32"))
    # A 4-d input (MobileViT: batch, patch position, pixel, channel) attends over its pixels.
    attention = layers.MultiHeadAttention(heads, head_width, name=f"{layer.name}_mha",
                                          attention_axes=(2,) if rank == 4 else None)

    def set_weights() -> None:
        weights = []
        for part in range(3):  # kimm orders the fused output as (q|k|v, head, channel)
            columns = slice(part * width, (part + 1) * width)
            weights += [qkv_kernel[:, columns].reshape(width, heads, head_width),
                        qkv_bias[columns].reshape(heads, head_width)]
        weights += [np.asarray(layer.projection.kernel.numpy()).reshape(heads, head_width, width),
                    np.asarray(layer.projection.bias.numpy())]
        attention.set_weights(weights)

    return _wrapped(layer, lambda x: attention(x, x)), set_weights


def _reparameterizable_conv(layer: Any) -> Replacement:
    from keras import layers

    kernel, bias = (np.asarray(w) for w in layer.get_reparameterized_weights())
    if layer.use_depthwise:
        conv = layers.DepthwiseConv2D(layer.kernel_size, layer.strides, layer.padding,
                                      name=f"{layer.name}_conv")
    else:
        conv = layers.Conv2D(layer.filters, layer.kernel_size, layer.strides, layer.padding,
                             name=f"{layer.name}_conv")
    pad = layer.zero_padding.padding if layer.zero_padding is not None else None

    def build(x: keras.KerasTensor) -> keras.KerasTensor:
        if pad is not None:
            x = layers.ZeroPadding2D(pad, name=f"{layer.name}_pad")(x)
        x = conv(x)
        if layer.activation is not None:
            x = layers.Activation(layer.activation, name=f"{layer.name}_act")(x)
        return x

    return _wrapped(layer, build), lambda: conv.set_weights([kernel, bias])


REPLACEMENTS: dict[str, Callable[[Any], Replacement]] = {
    "LayerScale": _layer_scale,
    "PositionEmbedding": _position_embedding,
    "Attention": _attention,
    "ReparameterizableConv2D": _reparameterizable_conv,
}


def portable_model(model: keras.Model) -> keras.Model:
    """``model`` (a plain functional model) with kimm's layers replaced by built-in ones; the
    same model when it has none.

    Raises:
        PortableError: a foreign layer without a known built-in equivalent (named).
    """
    import keras

    if not foreign_layers(model):
        return model
    weight_setters: list[Callable[[], None]] = []

    def clone(layer: Any) -> Any:
        if type(layer).__module__.startswith(KERAS_MODULE):
            return layer
        replace = REPLACEMENTS.get(type(layer).__name__)
        if replace is None:
            raise PortableError(f"{layer.name}: layer {type(layer).__module__}."
                                f"{type(layer).__name__} has no built-in Keras equivalent")
        replacement, set_weights = replace(layer)
        weight_setters.append(set_weights)
        return replacement

    rebuilt = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for set_weights in weight_setters:
        set_weights()
    left = foreign_layers(rebuilt)
    if left:
        raise PortableError(f"layers {', '.join(left)} remain after the rebuild")
    return rebuilt
