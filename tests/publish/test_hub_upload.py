"""Uploading through the real ``huggingface_hub`` client to a local Hub stand-in."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.publish.hub_server import FakeHub
from tigertrap.core.bundle import load_manifest
from tigertrap.core.config import load_settings
from tigertrap.publish.config import PublishSettings
from tigertrap.publish.hub import HubUploadError
from tigertrap.publish.publish import publish_to_hub
from tigertrap.publish.sums import SUMS_FILE, read_sums

REPO_ID = "tiger-trust/terai-tigers"
TOKEN = "hf_test_write_token"


@pytest.fixture(scope="module")
def uploaded(evaluated_bundle_source: Path, module_hub: FakeHub) -> dict[str, bytes]:
    """The repo's files after one upload of the evaluated bundle."""
    settings = PublishSettings(repo_id=REPO_ID, hf_token=TOKEN, hf_endpoint=module_hub.url)
    publish_to_hub(evaluated_bundle_source, settings)
    return module_hub.files(REPO_ID)


@pytest.fixture
def hub_env(fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    """HF_ENDPOINT pointing at the stand-in and a token in HF_TOKEN."""
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    return fake_hub


def _publish_from_environment(bundle: Path) -> str | None:
    return publish_to_hub(bundle, load_settings(PublishSettings, repo_id=REPO_ID)).commit_url


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_every_uploaded_file_matches_the_published_sums(uploaded: dict[str, bytes],
                                                        tmp_path: Path) -> None:
    (tmp_path / SUMS_FILE).write_bytes(uploaded[SUMS_FILE])
    sums = read_sums(tmp_path / SUMS_FILE)
    assert set(uploaded) == {*sums, SUMS_FILE}
    assert {path: _sha256(data) for path, data in uploaded.items() if path != SUMS_FILE} == sums


def test_uploaded_bundle_files_are_byte_identical_to_the_bundle(
        uploaded: dict[str, bytes], evaluated_bundle_source: Path) -> None:
    for relative, digest in load_manifest(evaluated_bundle_source).files.items():
        assert _sha256(uploaded[relative]) == digest, relative
    for name in ("manifest.json", "metrics/confusion_matrix_test2.png"):
        assert uploaded[name] == (evaluated_bundle_source / name).read_bytes()


def test_upload_holds_the_card_and_both_addaxai_folders(uploaded: dict[str, bytes]) -> None:
    assert uploaded["README.md"].startswith(b"---\n")
    for required in ("addaxai/v6/variables.json", "addaxai/v6/class_list.yaml",
                     "addaxai/v6/model.keras", "addaxai/v7/manifest.json",
                     "addaxai/v7/inference.py", "addaxai/v7/model.keras"):
        assert required in uploaded


def test_upload_uses_endpoint_and_token_from_the_environment(bundle: Path,
                                                             hub_env: FakeHub) -> None:
    commit_url = _publish_from_environment(bundle)
    assert hub_env.repos[REPO_ID]["name"] == "terai-tigers"
    assert hub_env.repos[REPO_ID]["organization"] == "tiger-trust"
    assert set(hub_env.tokens) == {f"Bearer {TOKEN}"}
    assert commit_url is not None and commit_url.startswith(hub_env.url)


def test_publishing_again_to_an_existing_repo_adds_a_commit(bundle: Path,
                                                            hub_env: FakeHub) -> None:
    _publish_from_environment(bundle)
    _publish_from_environment(bundle)
    assert [commit.repo_id for commit in hub_env.commits] == [REPO_ID, REPO_ID]


def test_upload_without_a_token_is_refused_before_any_request(
        bundle: Path, fake_hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(HubUploadError, match="HF_TOKEN"):
        _publish_from_environment(bundle)
    assert fake_hub.requests == []


def test_a_refused_commit_is_reported_with_the_hub_status(bundle: Path,
                                                          hub_env: FakeHub) -> None:
    hub_env.refuse_commits_with = 403
    with pytest.raises(HubUploadError, match="403"):
        _publish_from_environment(bundle)
