"""Publishing refuses a bundle whose files do not match its manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.publish.hub_server import FakeHub
from tigertrap.core.bundle import BundleError, load_manifest
from tigertrap.core.paths import atomic_write_json
from tigertrap.publish.config import PublishSettings
from tigertrap.publish.publish import build_addaxai, publish_to_hub


def _tamper(bundle: Path) -> None:
    with open(bundle / "model.keras", "ab") as handle:
        handle.write(b"\0")


def test_a_tampered_bundle_is_not_uploaded(bundle: Path, fake_hub: FakeHub) -> None:
    _tamper(bundle)
    settings = PublishSettings(repo_id="org/name", hf_token="hf_x", hf_endpoint=fake_hub.url)
    with pytest.raises(BundleError, match="model.keras does not match"):
        publish_to_hub(bundle, settings)
    assert fake_hub.requests == []


def test_a_tampered_bundle_gets_no_dry_run_folder(bundle: Path, tmp_path: Path) -> None:
    _tamper(bundle)
    with pytest.raises(BundleError, match="model.keras"):
        publish_to_hub(bundle, PublishSettings(), dry_run_dir=tmp_path / "upload")
    assert not (tmp_path / "upload").exists()


def test_a_tampered_bundle_gets_no_addaxai_folders(bundle: Path, tmp_path: Path) -> None:
    (bundle / "model.onnx").write_bytes(b"not the exported model")
    with pytest.raises(BundleError, match="model.onnx"):
        build_addaxai(bundle, tmp_path / "addaxai", PublishSettings())
    assert not (tmp_path / "addaxai").exists()


def test_a_bundle_without_the_weights_sha256_is_refused(bundle: Path, tmp_path: Path) -> None:
    manifest = load_manifest(bundle)
    files = {k: v for k, v in manifest.files.items() if k != "model.keras"}
    atomic_write_json(bundle / "manifest.json",
                      manifest.model_copy(update={"files": files}).model_dump(mode="json"))
    with pytest.raises(BundleError, match="records no sha256 for model.keras"):
        build_addaxai(bundle, tmp_path / "addaxai", PublishSettings())
