"""Models, metrics, OpenAPI and the static page, on a real server (health: test_health.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.api.conftest import BUNDLE_NAME, CLASSES, ApiServer, class_png


def test_models_lists_the_loaded_bundle_with_classes_in_output_order(api: ApiServer):
    with api.client() as client:
        models = client.get("/v1/models").json()["models"]
    assert len(models) == 1
    model = models[0]
    assert model["name"] == BUNDLE_NAME and model["classes"] == CLASSES
    assert model["backend"] == "onnx" and model["precision"] == "f32"
    assert model["input_size"] == 64
    assert "metrics" in model


def test_metrics_count_requests_by_route_and_report_batches_and_queue(api: ApiServer):
    with api.client() as client:
        client.post("/v1/classify", files=[("images", ("t.png", class_png("tiger"),
                                                       "image/png"))])
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'tigertrap_http_requests_total{method="POST",route="/v1/classify",status="200"}' in text
    assert 'tigertrap_http_request_duration_seconds_bucket{le="0.5",method="POST",' \
           'route="/v1/classify"}' in text
    assert 'tigertrap_classified_images_total{mode="crops"}' in text
    assert 'tigertrap_engine_batch_size_bucket{le="+Inf"}' in text
    assert "tigertrap_engine_queue_depth 0.0" in text


def test_openapi_documents_every_endpoint(api: ApiServer):
    with api.client() as client:
        assert client.get("/docs").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/metrics", "/v1/jobs", "/v1/jobs/{job_id}", "/v1/classify",
            "/v1/models"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/classify"]["post"]["requestBody"]["content"]


def test_the_web_page_and_its_script_are_served(api: ApiServer):
    with api.client() as client:
        page = client.get("/")
        script = client.get("/static/app.js")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="files"' in page.text and "/static/app.js" in page.text
    assert script.status_code == 200 and "/v1/classify" in script.text


def test_serve_with_a_wrong_setting_stops_naming_the_key(base_env: dict[str, str]):
    result = subprocess.run([sys.executable, "-m", "tigertrap.core", "serve", "--port", "9"],
                            env={**base_env, "MAX_IMAGES": "lots"}, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "MAX_IMAGES" in result.stderr and "lots" in result.stderr
