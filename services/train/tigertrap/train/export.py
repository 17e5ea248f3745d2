"""Export a trained classifier as a bundle (ARCHITECTURE.md, ``tigertrap.core.bundle``).

The bundle folder holds ``model.keras`` (raw RGB 0-255 in, preprocessing inside, reloads with
plain ``keras.saving.load_model``: kimm's own layers are rebuilt from built-in ones by
:mod:`tigertrap.train.portable` and checked to give the same outputs), ``model.onnx`` (tf2onnx,
with exact GELU's ``Erfc`` written as ``1 - Erf``; checked against Keras on a probe batch to
within :data:`ONNX_TOLERANCE`), ``class_map.yaml``, ``manifest.json`` with the sha256 of
those files, and ``metrics/``. The bundle is assembled in a temporary sibling folder and renamed
into place, so a reader never sees half a bundle.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tigertrap.core.bundle import (
    MODEL_KERAS,
    MODEL_ONNX,
    BundleManifest,
    write_manifest,
)
from tigertrap.core.class_map import CLASS_MAP_FILE, ClassMap
from tigertrap.core.paths import TEMP_SUFFIX
from tigertrap.train.portable import KERAS_MODULE, PortableError, portable_model

if TYPE_CHECKING:
    import keras

__all__ = [
    "METRICS_DIR",
    "ONNX_INPUT",
    "ONNX_OPSET",
    "ONNX_TOLERANCE",
    "ExportError",
    "check_export",
    "export_bundle",
    "plain_model",
]

log = logging.getLogger(__name__)

METRICS_DIR = "metrics"
ONNX_INPUT = "image"
ONNX_OPSET = 17
#: Largest absolute difference allowed between ONNX Runtime's and Keras's probabilities.
ONNX_TOLERANCE = 1e-4
#: Largest absolute difference allowed between the trained model's probabilities and those of
#: its kimm-free rebuild (kimm's ConvNeXt and ViT layers rebuild exactly; RepVGG-style branches
#: fused into one convolution differ by float rounding).
PORTABLE_TOLERANCE = 1e-4
PROBE_IMAGES = 4
PROBE_SEED = 20240601


class ExportError(RuntimeError):
    """The model cannot be written as a bundle that keeps the bundle's promises."""


def plain_model(model: keras.Model) -> keras.Model:
    """``model`` as a plain functional ``keras.Model`` over the same layers and weights.

    kimm returns its models as subclasses of ``Functional`` that plain Keras cannot deserialise;
    their graph is made of Keras layers, so rebuilding the functional graph drops kimm's class.
    """
    import keras

    if type(model) in (keras.Model, keras.models.Model) or (
            type(model).__module__.startswith(KERAS_MODULE)):
        return model
    return keras.Model(model.inputs[0], model.outputs[0], name=model.name)


def _save_keras(model: keras.Model, path: Path) -> None:
    # Keras insists on the .keras suffix, so the temporary name keeps it.
    temporary = path.with_name(f".{path.stem}{TEMP_SUFFIX}.keras")
    model.save(temporary, include_optimizer=False)
    os.replace(temporary, path)


def _register_erfc() -> None:
    """Teach tf2onnx TensorFlow's ``Erfc`` (exact GELU in ConvNeXt and ViT) as ``1 - Erf(x)``,
    through its handler registry (``tf2onnx.handler.tf_op``)."""
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    class Erfc:
        @classmethod
        def version_9(cls, ctx: Any, node: Any, **kwargs: Any) -> None:
            x = node.input[0]
            one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(
                1, utils.map_onnx_to_numpy_type(ctx.get_dtype(x)))).output[0]
            erf = ctx.make_node("Erf", [x], op_name_scope=node.name).output[0]
            shapes, dtypes = node.output_shapes, node.output_dtypes
            ctx.remove_node(node.name)
            ctx.make_node("Sub", [one, erf], outputs=node.output, name=node.name,
                          shapes=shapes, dtypes=dtypes)

    tf_op("Erfc")(Erfc)


def _plain_grouped_convolutions(model: keras.Model) -> keras.Model:
    """``model`` with each grouped ``Conv2D`` traced as one TensorFlow ``Conv2D`` op, which
    tf2onnx converts to an ONNX ``Conv`` with ``group`` (Keras runs grouped convolutions as an
    XLA-compiled function on CPU, a call tf2onnx cannot convert). Only for the conversion: the
    layers share the model's weights and the result is never saved."""
    import keras
    import tensorflow as tf

    class TracedGroupedConv2D(keras.layers.Layer):
        def __init__(self, source: keras.layers.Conv2D) -> None:
            super().__init__(name=source.name)
            self.source = source

        def call(self, inputs: Any, **kwargs: Any) -> Any:
            conv = self.source
            outputs = tf.nn.conv2d(inputs, conv.kernel, strides=conv.strides,
                                   padding=conv.padding.upper(), dilations=conv.dilation_rate)
            if conv.use_bias:
                outputs = tf.nn.bias_add(outputs, conv.bias)
            return conv.activation(outputs)

    def clone(layer: Any) -> Any:
        grouped = isinstance(layer, keras.layers.Conv2D) and getattr(layer, "groups", 1) > 1
        return TracedGroupedConv2D(layer) if grouped else layer

    return keras.models.clone_model(model, clone_function=clone, recursive=True)


def _save_onnx(model: keras.Model, path: Path, input_size: int) -> None:
    import tensorflow as tf
    import tf2onnx

    _register_erfc()
    spec = (tf.TensorSpec((None, input_size, input_size, 3), tf.float32, name=ONNX_INPUT),)
    temporary = path.with_name(f".{path.name}{TEMP_SUFFIX}")
    # tf2onnx's transpose optimiser logs a harmless traceback for some kimm graphs.
    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)
    tf2onnx.convert.from_keras(_plain_grouped_convolutions(model), input_signature=spec,
                               opset=ONNX_OPSET, output_path=str(temporary))
    os.replace(temporary, path)


def probe_images(input_size: int, count: int = PROBE_IMAGES) -> np.ndarray:
    """A fixed batch of raw RGB 0-255 float images for comparing two forms of a model."""
    rng = np.random.default_rng(PROBE_SEED)
    return rng.uniform(0.0, 255.0, (count, input_size, input_size, 3)).astype("float32")


def onnx_difference(model: keras.Model, onnx_path: Path, input_size: int) -> float:
    """Largest absolute difference between Keras and ONNX Runtime outputs on a probe batch."""
    import onnxruntime

    images = probe_images(input_size)
    expected = np.asarray(model(images, training=False))
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    actual = session.run(None, {session.get_inputs()[0].name: images})[0]
    return _largest_difference(expected, actual)


def _portable(model: keras.Model) -> keras.Model:
    try:
        return portable_model(plain_model(model))
    except PortableError as error:
        raise ExportError(f"{model.name}: model.keras would need kimm to load ({error}); "
                          "choose a backbone made of Keras layers (EfficientNet, ConvNeXt, "
                          "ViT, MobileNet, ResNet, ...)") from error


def check_export(model: keras.Model, input_size: int) -> None:
    """Rebuild ``model`` without kimm's layers and convert it to ONNX in a scratch folder, so
    that a backbone that cannot be exported (a kimm layer without a built-in equivalent, an op
    tf2onnx or ONNX Runtime cannot handle) is refused before training rather than after it.

    Raises:
        ExportError: naming the backbone and the rebuild's or the converter's complaint.
    """
    import onnxruntime

    portable = _portable(model)
    with tempfile.TemporaryDirectory(prefix="tigertrap-onnx-check-") as folder:
        path = Path(folder) / MODEL_ONNX
        try:
            _save_onnx(portable, path, input_size)
            onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # tf2onnx and onnxruntime raise many unrelated types
            first_line = str(error).strip().splitlines()[0][:300] if str(error) else ""
            raise ExportError(f"{model.name}: this backbone cannot be exported to ONNX "
                              f"({type(error).__name__}: {first_line}); choose another "
                              "backbone (EfficientNet, ConvNeXt, ViT, ...)") from error


def _largest_difference(expected: np.ndarray, actual: np.ndarray) -> float:
    """Largest absolute difference; infinite when either side is not finite."""
    if not (np.all(np.isfinite(expected)) and np.all(np.isfinite(actual))):
        return float("inf")
    return float(np.max(np.abs(expected - actual)))


def _check_portable(model: keras.Model, portable: keras.Model, input_size: int,
                    name: str) -> None:
    if portable is model:
        return
    images = probe_images(input_size)
    difference = _largest_difference(np.asarray(model(images, training=False)),
                                     np.asarray(portable(images, training=False)))
    if not difference <= PORTABLE_TOLERANCE:
        raise ExportError(f"{name}: the model rebuilt without kimm's layers differs by "
                          f"{difference:.2e} (> {PORTABLE_TOLERANCE:.0e})")


def _copy_metrics(source: Path | None, target: Path) -> list[str]:
    target.mkdir(parents=True, exist_ok=True)
    if source is None or not source.is_dir():
        return []
    copied = []
    for item in sorted(source.rglob("*")):
        if item.is_file():
            destination = target / item.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(item, destination)
            copied.append(destination.relative_to(target.parent).as_posix())
    return copied


def _replace_folder(staging: Path, out_dir: Path) -> None:
    """Rename ``staging`` to ``out_dir``; an existing bundle is moved aside first."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old{TEMP_SUFFIX}")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
    os.replace(staging, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def export_bundle(model: keras.Model, class_map: ClassMap | Iterable[str],
                  out_dir: str | os.PathLike[str], *, name: str, input_size: int,
                  crop_method: str = "exact", snip_size: int = 600, backbone: str = "",
                  recipe: str = "", metrics: dict[str, Any] | None = None,
                  tiger_threshold: float | None = None, config_hash: str = "",
                  metrics_dir: str | os.PathLike[str] | None = None, version: str = "0.1.0",
                  extra: dict[str, Any] | None = None) -> Path:
    """Write the classifier bundle of ``model`` to ``out_dir`` and return ``out_dir``.

    ``model`` takes raw RGB 0-255 images of ``input_size`` square and returns one softmax
    probability per class in ``class_map`` order. ``metrics_dir`` (reports, confusion matrices)
    is copied to ``metrics/``; ``extra`` adds fields to the manifest. kimm's own layers
    (ConvNeXt's ``LayerScale``, ViT's ``Attention`` and ``PositionEmbedding``) are replaced by
    built-in ones first, and the result is checked to give the same outputs.

    Raises:
        ExportError: the model's output does not match the class map, a layer plain Keras
            cannot load has no built-in equivalent, or the rebuilt model or the ONNX model
            differs from Keras by more than :data:`PORTABLE_TOLERANCE` or
            :data:`ONNX_TOLERANCE`.
    """
    classes = class_map if isinstance(class_map, ClassMap) else ClassMap(class_map)
    model = plain_model(model)
    _check_shapes(model, classes, input_size)
    portable = _portable(model)
    _check_portable(model, portable, input_size, name)
    model = portable
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=TEMP_SUFFIX, dir=out.parent))
    try:
        _save_keras(model, staging / MODEL_KERAS)
        _save_onnx(model, staging / MODEL_ONNX, input_size)
        difference = onnx_difference(model, staging / MODEL_ONNX, input_size)
        if not difference <= ONNX_TOLERANCE:
            raise ExportError(f"{name}: ONNX output differs from Keras by {difference:.2e} "
                              f"(> {ONNX_TOLERANCE:.0e})")
        classes.save(staging / CLASS_MAP_FILE)
        _copy_metrics(Path(metrics_dir) if metrics_dir else None, staging / METRICS_DIR)
        manifest = BundleManifest(
            name=name, version=version, created=datetime.now(timezone.utc).isoformat(),
            input_size=input_size, crop_method=crop_method, snip_size=snip_size,
            backbone=backbone, recipe=recipe, classes=list(classes.names),
            metrics=metrics or {}, tiger_threshold=tiger_threshold, config_hash=config_hash,
            input_range=[0, 255], input_layout="NHWC RGB float32", onnx_input=ONNX_INPUT,
            onnx_max_abs_difference=difference, **(extra or {}))
        write_manifest(staging, manifest, hash_files=[MODEL_KERAS, MODEL_ONNX, CLASS_MAP_FILE])
        _replace_folder(staging, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(staging)
        raise
    log.info("bundle %s written to %s (ONNX difference %.1e)", name, out, difference)
    return out


def _check_shapes(model: keras.Model, classes: ClassMap, input_size: int) -> None:
    input_shape = tuple(model.input_shape[1:])
    if input_shape != (input_size, input_size, 3):
        raise ExportError(f"model input {input_shape} is not ({input_size}, {input_size}, 3)")
    outputs = int(model.output_shape[-1])
    if outputs != len(classes):
        raise ExportError(f"model has {outputs} outputs but the class map lists "
                          f"{len(classes)} classes")
