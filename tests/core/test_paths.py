"""Data-root paths refuse escapes; atomic writes leave nothing half-written."""

from __future__ import annotations

import os

import pytest

from tigertrap.core.paths import (
    TEMP_SUFFIX,
    DataRoot,
    PathOutsideDataRoot,
    atomic_write,
    remove_partials,
)


def test_relative_paths_resolve_under_the_root(tmp_path):
    root = DataRoot(tmp_path)
    assert root.resolve("datasets/x/md.json") == tmp_path.resolve() / "datasets/x/md.json"
    assert root.relative(tmp_path / "datasets" / "x") == "datasets/x"


@pytest.mark.parametrize("path, reason", [
    ("/etc/passwd", "absolute"),
    ("../outside", "'..'"),
    ("datasets/../../outside", "'..'"),
    ("", "empty"),
])
def test_escaping_paths_are_refused(tmp_path, path, reason):
    with pytest.raises(PathOutsideDataRoot, match=reason):
        DataRoot(tmp_path).resolve(path)


def test_symlink_leaving_the_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(PathOutsideDataRoot, match="symlink"):
        DataRoot(root).resolve("link/secret.txt")


def test_missing_path_is_reported_when_required(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        DataRoot(tmp_path).resolve("nothing.json", must_exist=True)


def test_atomic_write_replaces_only_when_complete(tmp_path):
    target = tmp_path / "out" / "result.txt"
    with atomic_write(target, "w") as handle:
        handle.write("first")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as handle:
        handle.write("half of the second")
        raise RuntimeError("killed")
    assert target.read_text() == "first"
    assert [p.name for p in target.parent.iterdir()] == ["result.txt"]
    assert not any(name.endswith(TEMP_SUFFIX) for name in os.listdir(target.parent))


def test_partials_of_a_killed_writer_are_removed_and_outputs_kept(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / f".snip-0.jpg.x1{TEMP_SUFFIX}").write_bytes(b"half")
    (tmp_path / "a" / "snip-1.jpg").write_bytes(b"whole")
    assert remove_partials(tmp_path) == 1
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["snip-1.jpg"]
