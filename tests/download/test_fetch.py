"""Downloading from a real loopback server that misbehaves in the ways real mirrors do."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.download.image_server import ImageServer
from tigertrap.core.images import open_image
from tigertrap.download.fetch import FetchJob, FetchOptions, fetch_images

FAST = FetchOptions(concurrency=4, retries=1, backoff_s=0.01, timeout_s=5.0)


@pytest.fixture
def image_name(served_images: Path) -> str:
    return sorted(served_images.iterdir())[0].name


def _job(tmp_path: Path, *urls: str, **kwargs: object) -> FetchJob:
    return FetchJob(target=tmp_path / "out" / "image.jpg", urls=list(urls), **kwargs)  # type: ignore[arg-type]


def test_server_error_is_retried_until_the_image_arrives(
        tmp_path: Path, image_server: ImageServer, image_name: str) -> None:
    [result] = fetch_images([_job(tmp_path, image_server.url("flaky", image_name))], FAST)
    assert result.status == "ok"
    assert image_server.requests[f"/flaky/{image_name}"] == 2
    open_image(tmp_path / "out" / "image.jpg")


def test_saved_file_is_byte_identical_with_recorded_size_and_sha256(
        tmp_path: Path, image_server: ImageServer, served_images: Path, image_name: str) -> None:
    [result] = fetch_images([_job(tmp_path, image_server.url("img", image_name))], FAST)
    original = (served_images / image_name).read_bytes()
    assert (tmp_path / "out" / "image.jpg").read_bytes() == original
    assert result.bytes == len(original)
    assert result.sha256 == hashlib.sha256(original).hexdigest()


def test_slow_mirror_times_out_and_the_next_mirror_is_used(
        tmp_path: Path, image_server: ImageServer, image_name: str) -> None:
    options = FetchOptions(retries=0, backoff_s=0.01, timeout_s=0.5)
    slow, good = image_server.url("slow", image_name), image_server.url("img", image_name)
    [result] = fetch_images([_job(tmp_path, slow, good)], options)
    assert result.status == "ok"
    assert result.url == good


def test_a_mirror_that_only_times_out_fails_with_the_reason(
        tmp_path: Path, image_server: ImageServer, image_name: str) -> None:
    options = FetchOptions(retries=1, backoff_s=0.01, timeout_s=0.3)
    [result] = fetch_images([_job(tmp_path, image_server.url("slow", image_name))], options)
    assert result.status == "failed"
    assert "timed out" in result.error
    assert image_server.requests[f"/slow/{image_name}"] == 2
    assert not (tmp_path / "out" / "image.jpg").exists()


def test_truncated_body_is_never_saved(
        tmp_path: Path, image_server: ImageServer, image_name: str) -> None:
    [result] = fetch_images([_job(tmp_path, image_server.url("truncated", image_name))], FAST)
    assert result.status == "failed"
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_html_error_page_is_a_failure_not_a_jpg(
        tmp_path: Path, image_server: ImageServer, image_name: str) -> None:
    [result] = fetch_images([_job(tmp_path, image_server.url("html", image_name))], FAST)
    assert result.status == "failed"
    assert "not an image" in result.error
    assert not (tmp_path / "out" / "image.jpg").exists()


def test_not_found_fails_without_retrying(
        tmp_path: Path, image_server: ImageServer, image_name: str) -> None:
    [result] = fetch_images([_job(tmp_path, image_server.url("missing", image_name))], FAST)
    assert result.status == "failed"
    assert "HTTP 404" in result.error
    assert image_server.requests[f"/missing/{image_name}"] == 1


def test_failing_mirror_falls_back_to_the_next_in_order(
        tmp_path: Path, image_server: ImageServer, image_name: str) -> None:
    urls = [image_server.url("missing", image_name), image_server.url("html", image_name),
            image_server.url("img", image_name)]
    [result] = fetch_images([_job(tmp_path, *urls)], FAST)
    assert result.status == "ok"
    assert result.url == urls[2]
    assert [image_server.requests[f"/{mode}/{image_name}"] for mode in
            ("missing", "html", "img")] == [1, 1, 1]


def test_one_bad_url_does_not_stop_the_batch(
        tmp_path: Path, image_server: ImageServer, served_images: Path) -> None:
    names = sorted(path.name for path in served_images.iterdir())[:6]
    jobs = [FetchJob(tmp_path / name, [image_server.url("missing" if i == 2 else "img", name)])
            for i, name in enumerate(names)]
    results = fetch_images(jobs, FAST)
    assert [result.status for result in results] == ["ok", "ok", "failed", "ok", "ok", "ok"]


def test_complete_file_with_recorded_size_is_not_fetched_again(
        tmp_path: Path, image_server: ImageServer, image_name: str) -> None:
    url = image_server.url("img", image_name)
    [first] = fetch_images([_job(tmp_path, url)], FAST)
    [again] = fetch_images([_job(tmp_path, url, expected_bytes=first.bytes,
                                 expected_sha256=first.sha256)], FAST)
    assert again.status == "existing"
    assert image_server.requests[f"/img/{image_name}"] == 1


def test_file_whose_size_differs_from_the_record_is_fetched_again(
        tmp_path: Path, image_server: ImageServer, image_name: str) -> None:
    url = image_server.url("img", image_name)
    [first] = fetch_images([_job(tmp_path, url)], FAST)
    (tmp_path / "out" / "image.jpg").write_bytes(b"partial")
    [again] = fetch_images([_job(tmp_path, url, expected_bytes=first.bytes,
                                 expected_sha256=first.sha256)], FAST)
    assert again.status == "ok"
    assert image_server.requests[f"/img/{image_name}"] == 2


def test_hash_verification_catches_a_same_size_corruption(
        tmp_path: Path, image_server: ImageServer, image_name: str) -> None:
    url = image_server.url("img", image_name)
    [first] = fetch_images([_job(tmp_path, url)], FAST)
    target = tmp_path / "out" / "image.jpg"
    data = bytearray(target.read_bytes())
    data[-10] ^= 0xFF
    target.write_bytes(bytes(data))
    options = FetchOptions(retries=0, verify="hash")
    [again] = fetch_images([_job(tmp_path, url, expected_bytes=first.bytes,
                                 expected_sha256=first.sha256)], options)
    assert again.status == "ok"
    assert target.read_bytes() == (image_server.folder / image_name).read_bytes()


def test_unrecorded_image_already_on_disk_is_used_as_it_is(
        tmp_path: Path, image_server: ImageServer, served_images: Path, image_name: str) -> None:
    target = tmp_path / "out" / "image.jpg"
    target.parent.mkdir()
    target.write_bytes((served_images / image_name).read_bytes())
    [result] = fetch_images([_job(tmp_path, image_server.url("img", image_name))], FAST)
    assert result.status == "existing"
    assert sum(image_server.requests.values()) == 0


def test_rate_limit_spaces_request_starts(
        tmp_path: Path, image_server: ImageServer, served_images: Path) -> None:
    rate = 10.0
    names = sorted(path.name for path in served_images.iterdir())[:5]
    jobs = [FetchJob(tmp_path / name, [image_server.url("img", name)]) for name in names]
    fetch_images(jobs, FetchOptions(concurrency=5, rate_limit=rate))
    span = image_server.arrivals[-1] - image_server.arrivals[0]
    # Five starts at least 1/rate apart span 0.4 s; unlimited, they arrive within milliseconds.
    assert len(image_server.arrivals) == 5
    assert span >= 0.75 * (len(names) - 1) / rate
