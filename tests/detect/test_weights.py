"""Finding MegaDetector weights by name, environment variable, models folder or file."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tigertrap.detect.weights import (
    UnknownModelError,
    WeightsChecksumError,
    WeightsNotFound,
    resolve_weights,
    same_detector,
)


def test_missing_weights_without_download_name_the_file_and_the_models_folder(tmp_path):
    with pytest.raises(WeightsNotFound) as raised:
        resolve_weights("MDV5B", models_dir=tmp_path, download=False)

    message = str(raised.value)
    assert f"put md_v5b.0.1.pt or md_v5b.0.0.pt in {tmp_path}" in message
    assert "MDV5B=/path/to/md_v5b.0.1.pt" in message


def test_named_model_is_found_in_the_models_folder_under_its_canonical_name(weights_as,
                                                                            tmp_path):
    placed = weights_as("md_v5b.0.1.pt")

    weights = resolve_weights("MDV5B", models_dir=placed.parent, download=False)

    assert weights.path == placed and weights.file_name == "md_v5b.0.1.pt"


def test_original_mdv5_release_file_is_accepted(weights_as):
    placed = weights_as("md_v5a.0.0.pt")

    weights = resolve_weights("mdv5a", models_dir=placed.parent, download=False)

    assert weights.file_name == "md_v5a.0.0.pt"


def test_environment_variable_names_the_weights_file(weights_as, tmp_path, monkeypatch):
    placed = weights_as("my_copy_of_v5a.pt", tmp_path / "elsewhere")
    monkeypatch.setenv("MDV5A", str(placed))

    weights = resolve_weights("MDV5A", models_dir=tmp_path / "empty", download=False)

    assert weights.path == placed
    assert weights.file_name == "md_v5a.0.1.pt"  # the canonical name, whatever the copy is called


def test_environment_variable_pointing_nowhere_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("MDV5A", str(tmp_path / "gone.pt"))

    with pytest.raises(WeightsNotFound, match="MDV5A=.*gone.pt"):
        resolve_weights("MDV5A", models_dir=tmp_path, download=False)


def test_weights_that_do_not_match_their_sha256_are_refused(weights_as):
    placed = weights_as("md_v5a.0.0.pt")
    placed.with_name("md_v5a.0.0.pt.sha256").write_text("0" * 64 + "  md_v5a.0.0.pt\n")

    with pytest.raises(WeightsChecksumError, match="md_v5a.0.0.pt.sha256"):
        resolve_weights("MDV5A", models_dir=placed.parent, download=False)


def test_weights_matching_their_sha256_are_used(weights_as):
    placed = weights_as("md_v5a.0.0.pt")
    digest = hashlib.sha256(placed.read_bytes()).hexdigest()
    placed.with_name("md_v5a.0.0.pt.sha256").write_text(f"{digest}  md_v5a.0.0.pt\n")

    assert resolve_weights("MDV5A", models_dir=placed.parent, download=False).path == placed


def test_unknown_model_name_is_refused_with_the_known_names(tmp_path):
    with pytest.raises(UnknownModelError, match="mdv1000-redwood"):
        resolve_weights("MDV7", models_dir=tmp_path, download=False)


def test_known_model_records_its_typical_and_conservative_thresholds(weights_as):
    placed = weights_as("md_v5a.0.0.pt")

    metadata = resolve_weights("MDV5A", models_dir=placed.parent, download=False).metadata

    assert metadata["typical_detection_threshold"] == 0.2
    assert metadata["conservative_detection_threshold"] == 0.05
    assert metadata["megadetector_version"].startswith("v5a.")


def test_local_weights_file_keeps_its_own_name(tiny_checkpoint, tmp_path):
    weights = resolve_weights(str(tiny_checkpoint), models_dir=tmp_path, download=False)

    assert weights.file_name == "tiny_md.pt"
    assert weights.metadata["megadetector_version"] == "unknown"


@pytest.mark.parametrize(("first", "second", "same"), [
    ("md_v5a.0.0.pt", "md_v5a.0.1.pt", True),
    ("md_v5a.0.0.pt", "md_v5b.0.0.pt", False),
    ("custom.pt", "custom.pt", True),
    ("custom.pt", "other.pt", False),
])
def test_rereleased_mdv5_weights_count_as_the_same_detector(first, second, same):
    assert same_detector(first, second) is same


def test_missing_local_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsNotFound, match="custom.pt"):
        resolve_weights(str(tmp_path / "custom.pt"), models_dir=tmp_path, download=False)


REDWOOD = "v1000.0.0-redwood"
REDWOOD_FILE = "md_v1000.0.0-redwood.pt"


@pytest.fixture
def release_server(tmp_path: Path, tiny_checkpoint: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 publishing the tiny checkpoint as MDv1000-redwood."""
    folder = tmp_path / "release"
    folder.mkdir()
    shutil.copyfile(tiny_checkpoint, folder / REDWOOD_FILE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/{REDWOOD_FILE}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def redwood_released_at(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point megadetector's model table at a URL and md5 (its download cache in tmp_path)."""
    from megadetector.detection import run_detector

    cache = tmp_path / "system_tmp"
    cache.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(cache))
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)

    def release(url: str, md5: str) -> None:
        entry = {**run_detector.known_models[REDWOOD], "url": url, "md5": md5}
        monkeypatch.setitem(run_detector.known_models, REDWOOD, entry)

    return release


def test_missing_weights_are_downloaded_by_megadetector_and_kept(release_server,
                                                                 redwood_released_at,
                                                                 tiny_checkpoint, tmp_path):
    redwood_released_at(release_server, hashlib.md5(tiny_checkpoint.read_bytes()).hexdigest())

    weights = resolve_weights("MDv1000-redwood", models_dir=tmp_path / "models", download=True)

    assert weights.path == tmp_path / "models" / REDWOOD_FILE
    assert weights.file_name == REDWOOD_FILE
    assert weights.path.read_bytes() == tiny_checkpoint.read_bytes()


def test_download_failing_megadetectors_md5_check_is_not_used(release_server,
                                                              redwood_released_at, tmp_path):
    redwood_released_at(release_server, "0" * 32)

    with pytest.raises(WeightsNotFound, match="downloading failed"):
        resolve_weights("MDv1000-redwood", models_dir=tmp_path / "models", download=True)
    assert not (tmp_path / "models" / REDWOOD_FILE).exists()
