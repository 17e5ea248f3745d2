"""``/v1/reviews`` on a real server (``tigertrap serve``) and a real database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import ApiServer
from tests.postgres_server import PostgresServer
from tests.review.classified import MD_FILE, write_classified_job
from tests.review.conftest import HEADERS, server_env
from tigertrap.core.redis_server import free_port

JOB = "job-api"


@pytest.fixture(scope="module")
def review_server(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path
                  ) -> Iterator[ApiServer]:
    """A server on the default SQLite store, with the classified job brought in over HTTP."""
    folder = tmp_path_factory.mktemp("review-api")
    data = folder / "data"
    data.mkdir()
    write_classified_job(data, fixtures_dir)
    server = ApiServer(server_env(data), folder / "server.log")
    server.data = data  # type: ignore[attr-defined]
    try:
        with server.client(headers=HEADERS) as client:
            answer = client.post("/v1/reviews/jobs", json={"name": JOB, "md_file": MD_FILE})
            assert answer.status_code == 201, answer.text
        yield server
    finally:
        server.process.stop()


@pytest.fixture
def client(review_server: ApiServer) -> Iterator[httpx.Client]:
    with review_server.client(headers=HEADERS) as opened:
        yield opened


def _queue(client: httpx.Client) -> dict:
    answer = client.get(f"/v1/reviews/jobs/{JOB}/queue")
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_reviews_need_the_api_key(review_server: ApiServer) -> None:
    with review_server.client() as anonymous:
        assert anonymous.get("/v1/reviews/jobs").status_code == 401


def test_queue_lists_tiger_flags_first_with_counts_and_labels(client: httpx.Client) -> None:
    queue = _queue(client)
    assert [item["section"] for item in queue["items"]] == ["tiger", "tiger", "uncertain",
                                                            "uncertain", "qc"]
    assert queue["labels"] == ["tiger", "leopard", "deer", "not_an_animal", "unsure"]
    assert queue["sections"]["uncertain"]["total"] == 2


def test_frame_of_a_detection_is_the_jpeg_it_lies_in(client: httpx.Client) -> None:
    first = _queue(client)["items"][0]["id"]
    answer = client.get(f"/v1/reviews/detections/{first}/frame")
    assert answer.status_code == 200
    assert answer.content[:2] == b"\xff\xd8"


def test_two_reviewers_disagreeing_are_both_kept_and_shown_as_a_conflict(
        client: httpx.Client) -> None:
    target = _queue(client)["items"][2]["id"]
    for reviewer, label in (("asha", "leopard"), ("bikram", "deer")):
        answer = client.post(f"/v1/reviews/detections/{target}/verdicts",
                             json={"label": label, "reviewer": reviewer})
        assert answer.status_code == 201, answer.text
    record = answer.json()
    assert {(v["reviewer"], v["label"]) for v in record["current"]} == {
        ("asha", "leopard"), ("bikram", "deer")}
    assert record["conflict"] is True and record["agreed"] is None


def test_verdict_for_a_missing_detection_is_404(client: httpx.Client) -> None:
    answer = client.post("/v1/reviews/detections/987654/verdicts",
                         json={"label": "tiger", "reviewer": "asha"})
    assert answer.status_code == 404
    assert "no detection 987654" in answer.json()["detail"]


def test_verdict_with_a_label_outside_the_class_map_is_422_naming_the_labels(
        client: httpx.Client) -> None:
    target = _queue(client)["items"][0]["id"]
    answer = client.post(f"/v1/reviews/detections/{target}/verdicts",
                         json={"label": "lion", "reviewer": "asha"})
    assert answer.status_code == 422
    assert "not_an_animal" in answer.json()["detail"]


def test_job_from_outside_the_data_root_is_refused(client: httpx.Client) -> None:
    answer = client.post("/v1/reviews/jobs", json={"name": "escape", "md_file": "../x.json"})
    assert answer.status_code == 422
    assert ".." in answer.json()["detail"]


def test_api_serves_reviews_from_postgresql(postgres: PostgresServer, tmp_path: Path,
                                            fixtures_dir: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_classified_job(data, fixtures_dir)
    server = ApiServer(server_env(data, DATABASE_URL=postgres.new_database()),
                       tmp_path / "server.log")
    try:
        with server.client(headers=HEADERS) as client:
            assert client.post("/v1/reviews/jobs",
                               json={"name": JOB, "md_file": MD_FILE}).status_code == 201
            target = _queue(client)["items"][0]["id"]
            answer = client.post(f"/v1/reviews/detections/{target}/verdicts",
                                 json={"label": "tiger", "reviewer": "asha"})
            assert answer.json()["agreed"] == "tiger"
    finally:
        server.process.stop()
    assert not (data / "review").exists()  # nothing went to the SQLite default


def test_unreachable_database_stops_the_api_naming_database_url(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    url = f"postgresql+psycopg://someone@/review?host={tmp_path / 'nowhere'}"
    done = subprocess.run(
        [sys.executable, "-m", "tigertrap.core", "serve", "--host", "127.0.0.1", "--port",
         str(free_port())], env=server_env(data, DATABASE_URL=url), capture_output=True,
        text=True, timeout=120, check=False)
    assert done.returncode != 0
    assert "DATABASE_URL: cannot reach the review database" in done.stderr


def test_promotion_through_the_api_swaps_the_bundle_in_and_keeps_the_old_one(
        review_server: ApiServer, client: httpx.Client) -> None:
    data: Path = review_server.data  # type: ignore[attr-defined]
    candidate = data / "runs" / "retrain" / "bundle"
    code = ("from tests.train.bundle_factory import build_tiny_bundle; "
            f"build_tiny_bundle({str(candidate)!r}, ['tiger', 'deer', 'boar'])")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=600)
    served = data / "models" / "classifiers" / "served"
    for _ in range(2):
        answer = client.post("/v1/models/promote",
                             json={"candidate": "runs/retrain/bundle", "model": "served"})
        assert answer.status_code == 200, answer.text
    assert (served / "manifest.json").is_file()
    assert answer.json()["replaced"].startswith(str(served) + ".replaced-")
    (candidate / "model.onnx").write_bytes(b"tampered")
    refused = client.post("/v1/models/promote",
                          json={"candidate": "runs/retrain/bundle", "model": "served"})
    assert refused.status_code == 422
    assert "model.onnx" in refused.json()["detail"]
