"""The job endpoints on a real server, a real Redis and a real detect worker."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.api.conftest import DETECTOR_WEIGHTS, ApiServer, Process, wait_until

JOB_TIMEOUT_S = 180
FRAMES = ("tiger", "leopard", "empty")


def _dataset(api_data: Path, fixtures_dir: Path, name: str) -> str:
    folder = api_data / "datasets" / name / "images"
    folder.mkdir(parents=True, exist_ok=True)
    for species in FRAMES:
        source = sorted((fixtures_dir / "images" / species).iterdir())[0]
        shutil.copy2(source, folder / f"{species}{source.suffix.lower()}")
    return f"datasets/{name}/images"


def test_job_submitted_through_the_api_runs_on_a_worker_with_progress_and_result(
        api: ApiServer, detect_worker: Process, api_data: Path, fixtures_dir: Path):
    images = _dataset(api_data, fixtures_dir, "jobs-demo")
    with api.client() as client:
        created = client.post("/v1/jobs", json={"stage": "detect", "params": {
            "INPUT_DIR": images, "MD_MODEL": DETECTOR_WEIGHTS}})
        assert created.status_code == 202, created.text
        job_id = created.json()["id"]

        def finished() -> dict | None:
            status = client.get(f"/v1/jobs/{job_id}").json()
            return status if status["status"] in ("succeeded", "failed") else None

        status = wait_until(finished, JOB_TIMEOUT_S, "the detect job to finish")
    assert status["status"] == "succeeded", status["error"]
    assert status["stage"] == "detect"
    assert (status["processed"], status["total"], status["progress"]) == (3, 3, 1.0)
    md_file = status["results"]["detect"]["md_file"]
    assert md_file == f"{images}/md.json"
    assert (api_data / md_file).is_file()


def test_a_pipeline_job_lists_its_stages_in_order(api: ApiServer):
    with api.client() as client:
        response = client.post("/v1/jobs", json={"stages": [
            {"stage": "snip", "params": {"MD_FILE": "datasets/x/md.json"}},
            {"stage": "train", "params": {}}]})
    assert response.status_code == 202, response.text
    body = response.json()
    assert [step["stage"] for step in body["stages"]] == ["snip", "train"]
    assert body["status"] == "queued"


def test_delete_cancels_a_queued_job(api: ApiServer):
    with api.client() as client:
        job_id = client.post("/v1/jobs", json={"stage": "train", "params": {}}).json()["id"]
        cancelled = client.delete(f"/v1/jobs/{job_id}")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"


def test_unknown_job_id_is_a_404_naming_the_id(api: ApiServer):
    with api.client() as client:
        for method in ("GET", "DELETE"):
            response = client.request(method, "/v1/jobs/no-such-job")
            assert response.status_code == 404
            assert "no-such-job" in response.json()["detail"]


def test_unknown_stage_is_refused_naming_the_stage_and_the_known_ones(api: ApiServer):
    with api.client() as client:
        response = client.post("/v1/jobs", json={"stages": [{"stage": "sniff", "params": {}}]})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert "unknown stage 'sniff'" in detail and "snip" in detail


def test_unknown_stage_in_the_one_stage_shortcut_is_refused(api: ApiServer):
    with api.client() as client:
        response = client.post("/v1/jobs", json={"stage": "sniff", "params": {}})
    assert response.status_code == 422
    assert "stage: unknown stage 'sniff'" in response.json()["detail"]


def test_jobs_answer_503_when_the_queue_is_unreachable(api_without_redis: ApiServer):
    with api_without_redis.client() as client:
        submitted = client.post("/v1/jobs", json={"stage": "train", "params": {}})
        listed = client.get("/v1/jobs")
    for response in (submitted, listed):
        assert response.status_code == 503
        assert "job queue is unreachable" in response.json()["detail"]


def test_path_outside_the_data_root_is_refused_naming_the_parameter_and_path(api: ApiServer):
    with api.client() as client:
        for bad in ("../secrets", "/etc/passwd", "datasets/../../x"):
            response = client.post("/v1/jobs", json={
                "stage": "detect", "params": {"INPUT_DIR": bad}})
            assert response.status_code == 422, bad
            detail = response.json()["detail"]
            assert "INPUT_DIR" in detail and repr(bad) in detail


def test_symlink_leaving_the_data_root_is_refused(api: ApiServer, api_data: Path,
                                                   tmp_path: Path):
    link = api_data / "datasets" / "escape"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(tmp_path, target_is_directory=True)
    with api.client() as client:
        response = client.post("/v1/jobs", json={"stage": "snip", "params": {
            "MD_FILE": "datasets/escape/md.json"}})
    assert response.status_code == 422
    assert "outside the data root" in response.json()["detail"]


def test_missing_stages_field_is_refused_saying_what_is_required(api: ApiServer):
    with api.client() as client:
        response = client.post("/v1/jobs", json={})
    assert response.status_code == 422
    assert "'stages' is required" in response.json()["detail"]


def test_a_step_without_its_stage_is_refused_naming_the_field(api: ApiServer):
    with api.client() as client:
        response = client.post("/v1/jobs", json={"stages": [{"params": {}}]})
    assert response.status_code == 422
    assert "stages[0].stage: Field required" in response.json()["detail"]


def test_wrong_types_are_refused_naming_the_field_and_the_expected_type(api: ApiServer):
    with api.client() as client:
        not_a_list = client.post("/v1/jobs", json={"stages": "snip"})
        params_not_a_dict = client.post("/v1/jobs", json={
            "stages": [{"stage": "snip", "params": ["MD_FILE"]}]})
    assert not_a_list.status_code == 422
    assert "stages: Input should be a valid list" in not_a_list.json()["detail"]
    assert params_not_a_dict.status_code == 422
    assert "stages[0].params: Input should be a valid dictionary" in (
        params_not_a_dict.json()["detail"])


def test_a_body_that_is_not_json_is_refused(api: ApiServer):
    with api.client() as client:
        response = client.post("/v1/jobs", content=b"stage=snip",
                               headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "JSON" in response.json()["detail"]


def test_unknown_pipeline_stage_or_key_is_refused_naming_it(api: ApiServer):
    with api.client() as client:
        pipeline = client.post("/v1/jobs", json={"pipeline": "build-everything"})
        stage = client.post("/v1/jobs", json={"stage": "paint", "params": {}})
        key = client.post("/v1/jobs", json={"stage": "detect", "params": {
            "INPUT_DIR": "datasets/x", "TRESHOLD": 0.2}})
        misplaced = client.post("/v1/jobs", json={"pipeline": "process-season",
                                                  "params": {"train": {"SEED": 1}}})
    assert pipeline.status_code == 422 and "unknown pipeline 'build-everything'" in \
        pipeline.json()["detail"] and "process-season" in pipeline.json()["detail"]
    assert stage.status_code == 422 and "unknown stage 'paint'" in stage.json()["detail"]
    assert key.status_code == 422
    assert key.json()["detail"] == ("stages[0] detect.TRESHOLD: unknown setting of the detect "
                                    "stage; did you mean THRESHOLD?")
    assert misplaced.status_code == 422 and "has no stage 'train'" in misplaced.json()["detail"]


def test_a_named_pipeline_is_queued_with_its_stages_and_defaults(api: ApiServer):
    with api.client() as client:
        response = client.post("/v1/jobs", json={"pipeline": "build-model", "params": {
            "download": {"CVWC_SOURCE": "inputs/atrw.zip"}, "snip": {"SNIP_SIZE": 300}}})
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["pipeline"] == "build-model"
    assert [s["stage"] for s in body["stages"]] == ["download", "detect", "snip", "train",
                                                    "publish"]
    assert body["stages"][2]["params"] == {"by_class": True, "snip_size": 300}
    assert [p["status"] for p in body["stage_progress"]] == ["queued"] * 5
