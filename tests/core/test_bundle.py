"""Bundle manifests carry sha256 sums; a tampered bundle is refused."""

from __future__ import annotations

import pytest

from tigertrap.core.bundle import BundleError, BundleManifest, verify_bundle, write_manifest
from tigertrap.core.class_map import ClassMap


def make_bundle(folder):
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"onnx weights")
    ClassMap(["tiger", "leopard"]).save(folder / "class_map.yaml")
    manifest = BundleManifest(name="demo", input_size=64, classes=["tiger", "leopard"])
    return write_manifest(folder, manifest, hash_files=["model.onnx", "class_map.yaml"])


def test_intact_bundle_verifies(tmp_path):
    manifest = make_bundle(tmp_path / "b")
    checked, class_map = verify_bundle(tmp_path / "b")
    assert checked == manifest and class_map.names == ("tiger", "leopard")


def test_altered_weight_file_is_refused_by_name(tmp_path):
    make_bundle(tmp_path / "b")
    (tmp_path / "b" / "model.onnx").write_bytes(b"other weights")
    with pytest.raises(BundleError, match="model.onnx does not match"):
        verify_bundle(tmp_path / "b")


def test_missing_file_is_refused_by_name(tmp_path):
    make_bundle(tmp_path / "b")
    (tmp_path / "b" / "model.onnx").unlink()
    with pytest.raises(BundleError, match="model.onnx is missing"):
        verify_bundle(tmp_path / "b")


def test_folder_without_manifest_is_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="not a classifier bundle"):
        verify_bundle(tmp_path)
