"""AddaxAI's current (v7) model folder: ``manifest.json`` plus a self-contained ``inference.py``.

AddaxAI 7 scans ``~/AddaxAI/models/cls/<model_id>/`` for ``manifest.json`` (its
``ModelManifest``: model id, friendly name, env, model file, Hub repo, description, developer,
owner, citation, licence, info URL, minimum app version, species list, region) and runs the
folder's ``inference.py`` in the named conda environment through its ``ModelInference`` class
(``check_gpu``, ``load_model``, ``get_crop``, ``get_classification``, ``get_class_names`` and the
optional batch pair ``get_tensor`` / ``classify_batch``). The ``inference.py`` written here is
``templates/addaxai_inference.py`` verbatim; what it needs to know about the model is in
``class_map.yaml`` and ``preprocessing.json`` beside it. ``model.keras`` is the bundle's model
rewritten for AddaxAI's Keras 3.3 (:mod:`tigertrap.publish.addaxai_keras`).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Any

from tigertrap.core.bundle import MODEL_KERAS, BundleManifest
from tigertrap.core.class_map import CLASS_MAP_FILE, ClassMap
from tigertrap.core.paths import atomic_write_json, atomic_write_text
from tigertrap.publish.addaxai_keras import write_compatible_keras
from tigertrap.publish.config import PublishSettings

__all__ = [
    "ADDAXAI_MANIFEST_FILE",
    "INFERENCE_FILE",
    "PREPROCESSING_FILE",
    "addaxai_manifest",
    "inference_source",
    "write_v7_folder",
]

ADDAXAI_MANIFEST_FILE = "manifest.json"
INFERENCE_FILE = "inference.py"
PREPROCESSING_FILE = "preprocessing.json"
INFERENCE_TEMPLATE = "addaxai_inference.py"
ENV = "tensorflow-v2"


def inference_source() -> str:
    """The text of the ``inference.py`` every v7 folder carries."""
    return (files("tigertrap.publish").joinpath("templates", INFERENCE_TEMPLATE)
            .read_text(encoding="utf-8"))


def addaxai_manifest(manifest: BundleManifest, class_map: ClassMap,
                     settings: PublishSettings) -> dict[str, Any]:
    """AddaxAI's ``manifest.json`` for the bundle (fields of its ``ModelManifest``)."""
    return {
        "model_id": settings.model_id,
        "friendly_name": settings.friendly_name,
        "env": ENV,
        "model_fname": MODEL_KERAS,
        "hf_repo": settings.repo_id or None,
        "description": settings.description,
        "description_short": f"{len(class_map)} classes \u2022 Tiger conservation",
        "developer": settings.developer,
        "owner": settings.owner or None,
        "citation": settings.citation or None,
        "license": settings.license_url or settings.license,
        "info_url": settings.info_url,
        "min_app_version": settings.addaxai_v7_min_app_version,
        "species_list": list(class_map.names),
        "region": settings.region,
    }


def write_v7_folder(bundle_dir: Path, out_dir: Path, manifest: BundleManifest,
                    class_map: ClassMap, settings: PublishSettings) -> Path:
    """Write the v7 folder into ``out_dir`` (created); returns it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_compatible_keras(bundle_dir / MODEL_KERAS, out_dir / MODEL_KERAS)
    class_map.save(out_dir / CLASS_MAP_FILE)
    atomic_write_json(out_dir / PREPROCESSING_FILE,
                      {"input_size": manifest.input_size, "snip_size": manifest.snip_size,
                       "crop_method": manifest.crop_method}, indent=2)
    atomic_write_text(out_dir / INFERENCE_FILE, inference_source())
    atomic_write_json(out_dir / ADDAXAI_MANIFEST_FILE,
                      addaxai_manifest(manifest, class_map, settings), indent=2)
    return out_dir
