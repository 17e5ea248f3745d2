"""The publish stage as library functions: a verified bundle in, published folders out.

- :func:`build_addaxai` writes AddaxAI's v6 and/or v7 model folders.
- :func:`build_hub_folder` writes the exact folder a Hub upload sends: the bundle's files,
  ``addaxai/v6`` and ``addaxai/v7``, the model card ``README.md`` and ``SHA256SUMS``.
- :func:`publish_to_hub` builds that folder (into ``dry_run_dir`` and stops there, or into a
  temporary folder) and uploads it.

Each starts with :func:`verified_bundle`, which refuses a bundle whose files do not match the
sha256 sums in its ``manifest.json``. Every published folder carries a ``SHA256SUMS``. Folders are
built beside their destination and renamed into place, so a rerun replaces a previous result
whole and an interrupted run leaves the previous result untouched.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tigertrap.core.bundle import (
    MANIFEST_FILE,
    METRICS_DIR,
    MODEL_KERAS,
    MODEL_ONNX,
    BundleError,
    BundleManifest,
    verify_bundle,
)
from tigertrap.core.class_map import CLASS_MAP_FILE, ClassMap
from tigertrap.core.paths import atomic_write_text
from tigertrap.publish.addaxai_v6 import write_v6_folder
from tigertrap.publish.addaxai_v7 import write_v7_folder
from tigertrap.publish.config import PublishSettings
from tigertrap.publish.copying import atomic_copy
from tigertrap.publish.hub import DEFAULT_ENDPOINT, check_hub_settings, upload_to_hub
from tigertrap.publish.model_card import default_description, render_model_card
from tigertrap.publish.sums import SUMS_FILE, write_sums

__all__ = [
    "ADDAXAI_DIR",
    "ADDAXAI_LAYOUTS",
    "CARD_FILE",
    "PublishError",
    "Published",
    "build_addaxai",
    "build_hub_folder",
    "complete_settings",
    "publish_to_hub",
    "verified_bundle",
]

CARD_FILE = "README.md"
ADDAXAI_DIR = "addaxai"
ADDAXAI_LAYOUTS = ("v6", "v7")
#: Bundle files whose sha256 the manifest must record before the bundle may be published.
REQUIRED_SUMS = (MODEL_KERAS,)


class PublishError(ValueError):
    """A bundle or destination that cannot be published as asked; the message says why."""


@dataclass
class Published:
    """What a publish call wrote (and where it uploaded, if it did)."""

    folder: Path
    files: dict[str, str] = field(default_factory=dict)
    commit_url: str | None = None


def verified_bundle(bundle_dir: Path) -> tuple[BundleManifest, ClassMap]:
    """The bundle's manifest and class map, once every file matches its recorded sha256.

    Raises:
        BundleError: a missing or altered file, a class map that disagrees with the manifest, or
            a weight file whose sha256 the manifest does not record.
    """
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: no such bundle folder")
    manifest, class_map = verify_bundle(bundle_dir)
    present = [name for name in (MODEL_KERAS, MODEL_ONNX) if (bundle_dir / name).is_file()]
    unrecorded = [name for name in (*REQUIRED_SUMS, *present) if name not in manifest.files]
    if unrecorded:
        raise BundleError(f"{bundle_dir}: {MANIFEST_FILE} records no sha256 for "
                          f"{', '.join(sorted(set(unrecorded)))}; re-export the bundle")
    return manifest, class_map


def complete_settings(settings: PublishSettings, manifest: BundleManifest,
                      class_map: ClassMap) -> PublishSettings:
    """Fill the names and description left empty from the bundle."""
    return settings.model_copy(update={
        "model_id": settings.model_id or manifest.name,
        "friendly_name": settings.friendly_name or manifest.name,
        "description": settings.description or default_description(manifest, class_map),
    })


def _holds_publish_output(folder: Path) -> bool:
    return (folder / SUMS_FILE).is_file() or any((folder / layout).is_dir()
                                                 for layout in ADDAXAI_LAYOUTS)


@contextmanager
def _replacing(destination: Path) -> Iterator[Path]:
    """A fresh folder beside ``destination`` that replaces it when the block succeeds."""
    if (destination.exists() and any(destination.iterdir())
            and not _holds_publish_output(destination)):
        raise PublishError(f"{destination} is not empty and holds no earlier publish output; "
                           "give an empty or new folder")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", dir=destination.parent))
    previous = staging.with_name(f"{staging.name}.previous")
    try:
        yield staging
        if destination.exists():
            destination.replace(previous)
        staging.replace(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(previous, ignore_errors=True)


def _bundle_files(bundle_dir: Path, manifest: BundleManifest) -> list[str]:
    names = set(manifest.files) | {MANIFEST_FILE, CLASS_MAP_FILE}
    metrics = bundle_dir / METRICS_DIR
    if metrics.is_dir():
        names |= {path.relative_to(bundle_dir).as_posix() for path in metrics.rglob("*")
                  if path.is_file()}
    return sorted(names)


def _hub_folder_url(settings: PublishSettings, folder: str) -> str | None:
    if not settings.repo_id:
        return None
    endpoint = (settings.hf_endpoint or DEFAULT_ENDPOINT).rstrip("/")
    return f"{endpoint}/{settings.repo_id}/resolve/{settings.revision}/{folder}"


def _write_addaxai(bundle_dir: Path, out_dir: Path, manifest: BundleManifest,
                   class_map: ClassMap, settings: PublishSettings, layouts: Iterable[str],
                   hub_prefix: str = "") -> dict[str, str]:
    sums = {}
    for layout in layouts:
        target = out_dir / layout
        if layout == "v6":
            base_url = _hub_folder_url(settings, f"{hub_prefix}v6") if hub_prefix else None
            write_v6_folder(bundle_dir, target, manifest, class_map, settings, base_url)
        elif layout == "v7":
            write_v7_folder(bundle_dir, target, manifest, class_map, settings)
        else:
            raise PublishError(f"unknown AddaxAI layout {layout!r}; use "
                               f"{' or '.join(ADDAXAI_LAYOUTS)}")
        sums |= {f"{layout}/{path}": digest for path, digest in write_sums(target).items()}
    return sums


def build_addaxai(bundle_dir: Path, out_dir: Path, settings: PublishSettings,
                  layouts: Iterable[str] = ADDAXAI_LAYOUTS) -> Published:
    """Write ``out_dir/v6`` and/or ``out_dir/v7`` (each with ``SHA256SUMS``) from a bundle.

    Raises:
        BundleError: the bundle does not match its manifest.
        PublishError: an unknown layout, or ``out_dir`` holds something else.
    """
    layouts = list(dict.fromkeys(layouts))
    unknown = [layout for layout in layouts if layout not in ADDAXAI_LAYOUTS]
    if unknown or not layouts:
        raise PublishError(f"AddaxAI layouts are {', '.join(ADDAXAI_LAYOUTS)}; got {unknown}")
    manifest, class_map = verified_bundle(bundle_dir)
    settings = complete_settings(settings, manifest, class_map)
    with _replacing(out_dir) as staging:
        sums = _write_addaxai(bundle_dir, staging, manifest, class_map, settings, layouts)
    return Published(out_dir, sums)


def build_hub_folder(bundle_dir: Path, out_dir: Path, settings: PublishSettings) -> Published:
    """Write the exact folder a Hub upload of the bundle sends, into ``out_dir``.

    Raises:
        BundleError: the bundle does not match its manifest.
        PublishError: ``out_dir`` holds something else.
    """
    manifest, class_map = verified_bundle(bundle_dir)
    settings = complete_settings(settings, manifest, class_map)
    with _replacing(out_dir) as staging:
        for relative in _bundle_files(bundle_dir, manifest):
            atomic_copy(bundle_dir / relative, staging / relative)
        _write_addaxai(bundle_dir, staging / ADDAXAI_DIR, manifest, class_map, settings,
                       ADDAXAI_LAYOUTS, hub_prefix=f"{ADDAXAI_DIR}/")
        sums = write_sums(staging)
        atomic_write_text(staging / CARD_FILE,
                          render_model_card(manifest, class_map, bundle_dir, settings, sums))
        sums = write_sums(staging)
    return Published(out_dir, sums)


def publish_to_hub(bundle_dir: Path, settings: PublishSettings,
                   dry_run_dir: Path | None = None) -> Published:
    """Upload the bundle's Hub folder to ``settings.repo_id``; with ``dry_run_dir``, only write
    that folder there.

    Raises:
        BundleError: the bundle does not match its manifest.
        HubUploadError: no token or repo id, or the Hub refused the upload.
    """
    if dry_run_dir is not None:
        return build_hub_folder(bundle_dir, dry_run_dir, settings)
    check_hub_settings(settings)
    with tempfile.TemporaryDirectory(prefix="tigertrap-publish-") as temporary:
        published = build_hub_folder(bundle_dir, Path(temporary) / "hub", settings)
        published.commit_url = upload_to_hub(published.folder, settings,
                                             f"Publish {bundle_dir.name} with tigertrap")
    return published
