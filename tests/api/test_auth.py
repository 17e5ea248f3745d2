"""With TIGERTRAP_API_KEY set, /v1 needs the key (X-API-Key or Bearer); health and docs do not."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.api.conftest import API_KEY, ApiServer, class_png

UPLOAD = [("images", ("t.png", class_png("tiger"), "image/png"))]


@pytest.fixture(scope="module")
def keyed(start_server: Callable[..., ApiServer]) -> ApiServer:
    return start_server(TIGERTRAP_API_KEY=API_KEY)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/classify"), ("GET", "/v1/models"), ("POST", "/v1/jobs"),
    ("GET", "/v1/jobs"), ("GET", "/v1/jobs/some-id"), ("DELETE", "/v1/jobs/some-id")])
def test_requests_without_the_key_get_401(keyed: ApiServer, method: str, path: str):
    with keyed.client() as client:
        response = client.request(method, path)
    assert response.status_code == 401
    assert "API key" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_wrong_key_gets_401(keyed: ApiServer):
    with keyed.client(headers={"X-API-Key": "guess"}) as client:
        assert client.post("/v1/classify", files=UPLOAD).status_code == 401
    with keyed.client(headers={"Authorization": "Bearer guess"}) as client:
        assert client.post("/v1/classify", files=UPLOAD).status_code == 401


def test_the_key_in_the_x_api_key_header_is_accepted(keyed: ApiServer):
    with keyed.client(headers={"X-API-Key": API_KEY}) as client:
        response = client.post("/v1/classify", files=UPLOAD)
    assert response.status_code == 200
    assert response.json()["images"][0]["top_species"] == "tiger"


def test_the_key_as_a_bearer_token_is_accepted(keyed: ApiServer):
    with keyed.client(headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        assert client.get("/v1/models").status_code == 200


def test_health_page_and_docs_need_no_key(keyed: ApiServer):
    with keyed.client() as client:
        for path in ("/health", "/", "/docs", "/openapi.json"):
            assert client.get(path).status_code == 200, path


def test_without_a_configured_key_no_key_is_needed(api: ApiServer):
    with api.client() as client:
        assert client.get("/v1/models").status_code == 200
