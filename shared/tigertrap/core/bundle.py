"""The classifier bundle: the folder train writes and classify and publish read.

``models/classifiers/<name>/`` holds ``model.keras`` (raw RGB 0-255 in, preprocessing inside,
loads with plain ``keras.saving.load_model``), ``model.onnx`` (the same function for fast CPU
serving), ``class_map.yaml`` (output index -> class name), ``manifest.json`` (this module's
:class:`BundleManifest`) and ``metrics/``. The manifest carries the sha256 of every file it
lists; :func:`verify_bundle` refuses a bundle whose files do not match it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tigertrap.core.class_map import CLASS_MAP_FILE, ClassMap
from tigertrap.core.paths import atomic_write_json

__all__ = [
    "MANIFEST_FILE",
    "MODEL_KERAS",
    "MODEL_ONNX",
    "BundleError",
    "BundleManifest",
    "file_sha256",
    "load_manifest",
    "verify_bundle",
    "write_manifest",
]

MANIFEST_FILE = "manifest.json"
MODEL_KERAS = "model.keras"
MODEL_ONNX = "model.onnx"
METRICS_DIR = "metrics"
#: The class the tool exists for; its operating point is recorded in every manifest.
TIGER = "tiger"


class BundleError(ValueError):
    """A bundle that is incomplete, unreadable, or whose files do not match its manifest."""


class BundleManifest(BaseModel):
    """``manifest.json``: what a consumer needs to use the model exactly as it was trained."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    version: str = "0.1.0"
    created: str = ""
    input_size: int = Field(gt=0, description="square input, pixels")
    crop_method: Literal["exact", "square"] = "exact"
    snip_size: int = Field(default=600, gt=0, description="crop size before resizing to input")
    backbone: str = ""
    recipe: str = ""
    classes: list[str] = Field(default_factory=list, description="in output order")
    metrics: dict[str, Any] = Field(default_factory=dict)
    tiger_threshold: float | None = Field(
        default=None, description="score at which tiger recall on val reached the target")
    config_hash: str = ""
    files: dict[str, str] = Field(default_factory=dict, description="relative path -> sha256")


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_manifest(bundle_dir: str | os.PathLike[str]) -> BundleManifest:
    """Read and validate ``manifest.json``. Raises :class:`BundleError`."""
    path = Path(bundle_dir) / MANIFEST_FILE
    try:
        return BundleManifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as error:
        raise BundleError(f"{bundle_dir}: no {MANIFEST_FILE}; not a classifier bundle") from error
    except (json.JSONDecodeError, ValidationError) as error:
        raise BundleError(f"{path}: invalid manifest: {error}") from error


def write_manifest(bundle_dir: str | os.PathLike[str], manifest: BundleManifest,
                   *, hash_files: list[str] | None = None) -> BundleManifest:
    """Write ``manifest.json``, first recording the sha256 of ``hash_files`` (relative paths)."""
    folder = Path(bundle_dir)
    files = dict(manifest.files)
    for relative in hash_files or []:
        files[relative] = file_sha256(folder / relative)
    manifest = manifest.model_copy(update={"files": files})
    atomic_write_json(folder / MANIFEST_FILE, manifest.model_dump(mode="json"), indent=2)
    return manifest


def verify_bundle(bundle_dir: str | os.PathLike[str]) -> tuple[BundleManifest, ClassMap]:
    """Check that every file the manifest lists exists with its sha256 and that the class map
    agrees with the manifest's classes.

    Raises:
        BundleError: naming each missing or altered file.
    """
    folder = Path(bundle_dir)
    manifest = load_manifest(folder)
    problems = []
    for relative, expected in sorted(manifest.files.items()):
        path = folder / relative
        if not path.is_file():
            problems.append(f"{relative} is missing")
        elif file_sha256(path) != expected:
            problems.append(f"{relative} does not match its sha256 in {MANIFEST_FILE}")
    if problems:
        raise BundleError(f"{folder}: " + "; ".join(problems))
    try:
        class_map = ClassMap.load(folder / CLASS_MAP_FILE)
    except FileNotFoundError as error:
        raise BundleError(f"{folder}: no {CLASS_MAP_FILE}") from error
    if manifest.classes and list(class_map.names) != manifest.classes:
        raise BundleError(f"{folder}: {CLASS_MAP_FILE} and {MANIFEST_FILE} list the classes in "
                          "different orders")
    return manifest, class_map
