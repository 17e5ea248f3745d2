"""POST /v1/classify on a real server: crops and full frames, bad uploads, limits, load."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import (
    MAX_IMAGES,
    MAX_UPLOAD_BYTES,
    ApiServer,
    Process,
    class_png,
)
from tests.conftest import wait_until
from tigertrap.core.images import image_size

PNG = "image/png"
JPEG = "image/jpeg"
CONCURRENT_CLIENTS = 32
FULL_FRAMES = ("tiger", "leopard_cat", "empty")
#: The random detector also gives boxes of zero height: reported, but nothing to classify.
MIN_BOX_SIDE = 0.01


def _frames(fixtures_dir: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    files = []
    for species in FULL_FRAMES:
        path = sorted((fixtures_dir / "images" / species).iterdir())[0]
        files.append(("images", (path.name, path.read_bytes(), JPEG)))
    return files


def _post(server: ApiServer, files: list, mode: str = "crops", **kwargs: object
          ) -> httpx.Response:
    with server.client() as client:
        return client.post("/v1/classify", files=files, data={"mode": mode}, **kwargs)


# -- crops --------------------------------------------------------------------------------------

def test_crops_are_classified_in_order_with_top_k_species_and_the_tiger_flag(api: ApiServer):
    response = _post(api, [("images", ("t.png", class_png("tiger"), PNG)),
                           ("images", ("s.png", class_png("sambar"), PNG))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny" and body["mode"] == "crops"
    tiger, sambar = body["images"]
    assert (tiger["file"], tiger["top_species"], tiger["tiger"]) == ("t.png", "tiger", True)
    assert (sambar["file"], sambar["top_species"], sambar["tiger"]) == ("s.png", "sambar", False)
    detection = tiger["detections"][0]
    assert detection["bbox"] == [0.0, 0.0, 1.0, 1.0] and detection["conf"] is None
    scores = [s["score"] for s in detection["species"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)


def test_a_large_jpeg_crop_is_classified_and_reported_at_its_full_size(api: ApiServer,
                                                                          fixtures_dir: Path):
    path = sorted((fixtures_dir / "images" / "tiger").iterdir())[0]
    response = _post(api, [("images", (path.name, path.read_bytes(), JPEG))])
    assert response.status_code == 200, response.text
    image = response.json()["images"][0]
    assert image["file"] == path.name and len(image["detections"][0]["species"]) == 3
    assert (image["width"], image["height"]) == image_size(path)


def test_thirty_two_concurrent_clients_all_get_correct_answers(api: ApiServer):
    names = ["tiger", "leopard", "sambar"]

    async def one(client: httpx.AsyncClient, name: str) -> tuple[int, str | None]:
        response = await client.post("/v1/classify", data={"mode": "crops"},
                                     files=[("images", (f"{name}.png", class_png(name), PNG))])
        return response.status_code, response.json()["images"][0]["top_species"]

    async def run() -> list[tuple[int, str | None]]:
        async with httpx.AsyncClient(base_url=api.url, timeout=120) as client:
            return await asyncio.gather(*(one(client, names[i % 3])
                                          for i in range(CONCURRENT_CLIENTS)))

    answers = asyncio.run(run())
    assert answers == [(200, names[i % 3]) for i in range(CONCURRENT_CLIENTS)]


# -- full frames --------------------------------------------------------------------------------

def test_full_frames_are_detected_on_the_detect_worker_and_their_animals_classified(
        api: ApiServer, detect_worker: Process, fixtures_dir: Path, api_data: Path):
    jobs = api_data / "jobs"
    before = set(jobs.iterdir()) if jobs.is_dir() else set()
    response = _post(api, _frames(fixtures_dir), mode="full")
    assert response.status_code == 200, response.text
    images = response.json()["images"]
    assert [image["file"] for image in images] == [f[1][0] for f in _frames(fixtures_dir)]
    detections = [d for image in images for d in image["detections"]]
    assert detections, "the tiny detector finds boxes in real frames"
    for detection in detections:
        assert detection["conf"] >= 0.05 and all(0 <= v <= 1 for v in detection["bbox"])
        if detection["category"] != "1":
            assert detection["species"] == [], "only animals are classified"
        elif min(detection["bbox"][2:]) > MIN_BOX_SIDE:
            assert len(detection["species"]) == 3
    assert any(d["species"] for d in detections)
    for image in images:
        assert image["tiger"] == any(d["tiger"] for d in image["detections"])
    # The frames and the detector's output are not left behind under <data>/jobs/.
    assert jobs.is_dir() and set(jobs.iterdir()) == before


def test_full_frames_are_kept_under_jobs_when_asked(
        detect_worker: Process, start_server: Callable[..., ApiServer], fixtures_dir: Path,
        api_data: Path):
    keeping = start_server(KEEP_UPLOADS="true")
    before = set((api_data / "jobs").glob("*/md.json"))
    assert _post(keeping, _frames(fixtures_dir), mode="full").status_code == 200
    md_files = list(set((api_data / "jobs").glob("*/md.json")) - before)
    assert len(md_files) == 1
    assert len(list((md_files[0].parent / "uploads").iterdir())) == len(FULL_FRAMES)


def test_full_frames_in_process_match_the_detect_workers_boxes(
        api: ApiServer, detect_worker: Process, start_server: Callable[..., ApiServer],
        fixtures_dir: Path):
    in_process = start_server(DETECTION_MODE="inprocess")
    by_queue = _post(api, _frames(fixtures_dir), mode="full").json()["images"]
    local = _post(in_process, _frames(fixtures_dir), mode="full").json()["images"]

    def boxes(images: list[dict]) -> list[list[tuple]]:
        return [[(d["category"], d["bbox"]) for d in image["detections"]] for image in images]

    assert boxes(local) == boxes(by_queue)
    assert [i["top_species"] for i in local] == [i["top_species"] for i in by_queue]


# -- bad uploads --------------------------------------------------------------------------------

def test_a_file_that_is_not_an_image_gets_422_naming_the_file(api: ApiServer):
    response = _post(api, [("images", ("notes.jpg", b"<html>not found</html>", JPEG))])
    assert response.status_code == 422
    assert "'notes.jpg'" in response.json()["detail"]
    assert "not a JPEG or PNG" in response.json()["detail"]


def test_a_truncated_jpeg_gets_422_naming_the_file(api: ApiServer, fixtures_dir: Path):
    path = fixtures_dir / "edge_cases" / "cameratrapai_african_elephants_truncated_file.jpg"
    good = ("images", ("fine.png", class_png("tiger"), PNG))
    response = _post(api, [good, ("images", (path.name, path.read_bytes(), JPEG))])
    assert response.status_code == 422
    assert f"'{path.name}'" in response.json()["detail"]
    assert "truncated" in response.json()["detail"]


def test_an_empty_file_gets_422_naming_the_file(api: ApiServer):
    response = _post(api, [("images", ("empty.jpg", b"", JPEG))])
    assert response.status_code == 422
    assert "'empty.jpg' is empty" in response.json()["detail"]


def test_a_file_over_the_size_limit_gets_413_naming_the_file_and_limit(api: ApiServer):
    big = class_png("tiger") + b"\0" * MAX_UPLOAD_BYTES
    response = _post(api, [("images", ("huge.png", big, PNG))])
    assert response.status_code == 413
    assert "'huge.png'" in response.json()["detail"]
    assert str(MAX_UPLOAD_BYTES) in response.json()["detail"]


def test_more_images_than_the_limit_get_413_naming_the_limit(api: ApiServer):
    small = class_png("tiger", (8, 8))
    files = [("images", (f"{i}.png", small, PNG)) for i in range(MAX_IMAGES + 1)]
    response = _post(api, files)
    assert response.status_code == 413
    assert f"limit is {MAX_IMAGES}" in response.json()["detail"]


def test_a_request_without_the_images_field_gets_422_naming_it(api: ApiServer):
    response = _post(api, [("pictures", ("t.png", class_png("tiger"), PNG))])
    assert response.status_code == 422
    assert "images: Field required" in response.json()["detail"]


def test_a_json_body_gets_415_asking_for_multipart(api: ApiServer):
    with api.client() as client:
        response = client.post("/v1/classify", json={"images": ["t.png"]})
    assert response.status_code == 415
    assert "multipart/form-data" in response.json()["detail"]


def test_a_part_sent_as_text_gets_415_naming_the_file(api: ApiServer):
    response = _post(api, [("images", ("t.png", class_png("tiger"), "text/plain"))])
    assert response.status_code == 415
    assert "'t.png'" in response.json()["detail"]


def test_an_unknown_mode_gets_422_naming_the_allowed_modes(api: ApiServer):
    response = _post(api, [("images", ("t.png", class_png("tiger"), PNG))], mode="tiles")
    assert response.status_code == 422
    assert "mode" in response.json()["detail"] and "'crops'" in response.json()["detail"]


# -- overload -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tight(start_server: Callable[..., ApiServer]) -> ApiServer:
    """A server whose inference queue holds one crop."""
    return start_server(MAX_QUEUE="1", BATCH_SIZE="1", MAX_WAIT_MS="0", RETRY_AFTER_S="3")


def test_more_crops_than_the_inference_queue_holds_are_classified_in_parts(
        tight: ApiServer):
    names = ["tiger", "sambar", "leopard"] * 4
    files = [("images", (f"{i}-{name}.png", class_png(name), PNG)) for i, name in enumerate(names)]
    response = _post(tight, files)
    assert response.status_code == 200, response.text
    assert [image["top_species"] for image in response.json()["images"]] == names


def test_a_busy_inference_queue_gets_503_with_retry_after(tight: ApiServer):
    files = [("images", (f"{i}.png", class_png("tiger"), PNG)) for i in range(8)]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=tight.url, timeout=120) as client:
            return list(await asyncio.gather(*(
                client.post("/v1/classify", files=files, data={"mode": "crops"})
                for _ in range(CONCURRENT_CLIENTS))))

    def busy() -> httpx.Response | None:
        return next((r for r in asyncio.run(burst()) if r.status_code == 503), None)

    response = wait_until(busy, 120, "a request refused while the queue is full")
    assert response.headers["retry-after"] == "3"
    assert "busy" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/classify"])
def test_without_a_model_classify_answers_503_saying_how_to_configure_one(
        start_server: Callable[..., ApiServer], path: str):
    bare = start_server(MODEL="")
    response = _post(bare, [("images", ("t.png", class_png("tiger"), PNG))])
    assert response.status_code == 503
    assert "MODEL" in response.json()["detail"]
