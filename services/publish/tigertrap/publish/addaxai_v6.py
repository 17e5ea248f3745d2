"""AddaxAI's legacy (v6, formerly EcoAssist) model folder for its ``mewc-keras`` model type.

The folder holds ``variables.json`` (what AddaxAI's GUI reads), ``class_list.yaml`` and
``model.keras``. AddaxAI's adapter (``classification_utils/model_types/mewc-keras/
classify_detections.py`` on AddaxAI's ``v6`` branch) names the outputs like this::

    class_map = yaml.safe_load(class_list.yaml)
    class_ids = sorted({v: k for k, v in class_map.items()}.values())   # the keys, sorted
    if every key converts with int():
        class_ids = [class_map[i] for i in class_ids]                    # names by sorted key

so output ``i`` is named by the ``i``-th smallest key. Keys written as YAML integers sort
numerically and give the model's true order; keys that load as strings ('0', '1', '10', '2', ...)
sort as text and mislabel every output from index 2 on once there are more than ten classes.
:func:`class_list_text` writes integer keys and :func:`mewc_keras_class_ids` re-checks the result
with that rule before anything is written.

The adapter also resizes every crop to 384 x 384 with ``cv2.resize`` before ``predict``
(``img_size = 384``); a bundle trained at another size is wrapped in a model that takes
384 x 384 and resizes to the bundle's input inside the graph. The file is written for AddaxAI's
Keras 3.3 (:mod:`tigertrap.publish.addaxai_keras`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tigertrap.core.bundle import MODEL_KERAS, BundleManifest
from tigertrap.core.class_map import ClassMap
from tigertrap.core.paths import atomic_write_json, atomic_write_text
from tigertrap.publish.addaxai_keras import write_compatible_keras
from tigertrap.publish.config import PublishSettings

__all__ = [
    "CLASS_LIST_FILE",
    "MEWC_KERAS_IMG_SIZE",
    "VARIABLES_FILE",
    "AddaxV6Error",
    "class_list_text",
    "mewc_keras_class_ids",
    "variables",
    "write_v6_folder",
]

CLASS_LIST_FILE = "class_list.yaml"
VARIABLES_FILE = "variables.json"
#: ``img_size`` hard-coded in AddaxAI's mewc-keras adapter.
MEWC_KERAS_IMG_SIZE = 384
MODEL_TYPE = "mewc-keras"
ENV = "tensorflow-v2"


class AddaxV6Error(ValueError):
    """A bundle that cannot be expressed as a correct AddaxAI v6 mewc-keras folder."""


def mewc_keras_class_ids(class_list: dict[Any, Any]) -> list[str]:
    """The output-order names AddaxAI's mewc-keras adapter derives from a loaded class list."""
    inverse = {value: key for key, value in class_list.items()}
    class_ids = sorted(inverse.values())
    try:
        for key in class_list:
            int(key)
    except ValueError:
        return [str(name) for name in class_ids]
    return [str(class_list[key]) for key in class_ids]


def class_list_text(class_map: ClassMap) -> str:
    """``class_list.yaml``: ``<index>: <name>`` with integer keys, in output order."""
    text = yaml.safe_dump(class_map.as_dict(), sort_keys=False, allow_unicode=True)
    derived = mewc_keras_class_ids(yaml.safe_load(text))
    if derived != list(class_map.names):
        raise AddaxV6Error(f"AddaxAI would read the class list as {derived}, "
                           f"not the model's order {list(class_map.names)}")
    return text


def _threshold(value: float) -> str:
    return f"{value:.2f}"


def _download_size(paths: list[Path]) -> str:
    size = sum(path.stat().st_size for path in paths)
    return f"{max(1, round(size / 1_000_000))} MB"


def variables(manifest: BundleManifest, class_map: ClassMap, settings: PublishSettings,
              download_info: list[list[str]], total_download_size: str) -> dict[str, Any]:
    """The content of ``variables.json`` (keys as in AddaxAI's MEWC_integration.md)."""
    names = list(class_map.names)
    return {
        "model_fname": MODEL_KERAS,
        "description": settings.description,
        "developer": settings.developer,
        "env": ENV,
        "type": MODEL_TYPE,
        "download_info": download_info or [["", ""]],
        "citation": settings.citation,
        "license": settings.license_url,
        "total_download_size": total_download_size,
        "info_url": settings.info_url,
        "all_classes": names,
        "selected_classes": names,
        "var_cls_detec_thresh": _threshold(settings.cls_detec_thresh),
        "var_cls_detec_thresh_default": _threshold(settings.cls_detec_thresh),
        "var_cls_class_thresh": _threshold(settings.cls_class_thresh),
        "var_cls_class_thresh_default": _threshold(settings.cls_class_thresh),
        "var_smooth_cls_animal": False,
        "min_version": settings.addaxai_v6_min_version,
        "var_tax_levels_idx": 0,
        "var_tax_fallback": False,
        "var_tax_fallback_default": False,
    }


def _write_model(bundle_dir: Path, out_dir: Path) -> None:
    """``model.keras`` for the adapter: the bundle's model, wrapped to take 384 x 384 crops when
    it was trained at another size, saved so that AddaxAI's Keras 3.3 loads it."""
    import keras  # heavy: only when a folder is written

    source = bundle_dir / MODEL_KERAS
    inner = keras.saving.load_model(source, compile=False)
    height, width = inner.input_shape[1:3]
    if (height, width) in ((None, None), (MEWC_KERAS_IMG_SIZE, MEWC_KERAS_IMG_SIZE)):
        write_compatible_keras(source, out_dir / MODEL_KERAS)
        return
    inputs = keras.Input((MEWC_KERAS_IMG_SIZE, MEWC_KERAS_IMG_SIZE, 3), name="addaxai_crop")
    resized = keras.layers.Resizing(height, width, interpolation="bilinear",
                                    name="to_model_input")(inputs)
    wrapper = keras.Model(inputs, inner(resized), name=f"{inner.name}_addaxai_v6")
    wrapped = out_dir / f".{MODEL_KERAS}.wrapped.keras"
    wrapper.save(wrapped)
    write_compatible_keras(wrapped, out_dir / MODEL_KERAS)
    wrapped.unlink()


def write_v6_folder(bundle_dir: Path, out_dir: Path, manifest: BundleManifest,
                    class_map: ClassMap, settings: PublishSettings,
                    download_base_url: str | None = None) -> Path:
    """Write the v6 folder into ``out_dir`` (created); returns it.

    ``download_base_url`` (the folder's address on the Hub) fills ``download_info``.

    Raises:
        AddaxV6Error: a ``square``-crop bundle (the adapter crops the exact box), or a class
            list AddaxAI would misread.
    """
    if manifest.crop_method != "exact":
        raise AddaxV6Error(f"AddaxAI's {MODEL_TYPE} adapter crops the exact MegaDetector box; "
                           f"this bundle was trained on '{manifest.crop_method}' crops, so its "
                           "v6 folder would mislead. Use the v7 layout.")
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / CLASS_LIST_FILE, class_list_text(class_map))
    _write_model(bundle_dir, out_dir)
    files = [MODEL_KERAS, CLASS_LIST_FILE]
    download_info = ([[f"{download_base_url}/{name}?download=true", name] for name in files]
                     if download_base_url else [])
    content = variables(manifest, class_map, settings, download_info,
                        _download_size([out_dir / name for name in files]))
    atomic_write_json(out_dir / VARIABLES_FILE, content, indent=2)
    return out_dir

