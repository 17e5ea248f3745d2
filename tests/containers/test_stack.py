"""The whole stack in containers, driven through the API's published port only.

The images are built from the repository's Dockerfiles by scripts/containers and run by
docker-compose.yml (podman-compose here); the checks are the stage tests' own checks.
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.api.conftest import class_png
from tests.conftest import wait_until
from tests.containers.conftest import (
    DETECTOR_WEIGHTS,
    IMAGE_UID,
    SERVICES,
    VISIBILITY_TIMEOUT_S,
    Stack,
    chown_tree,
)
from tests.containers.conftest import wait_for_api as api_health
from tests.e2e.conftest import make_snip_dataset
from tests.e2e.test_queue import assert_one_complete_snip_output
from tigertrap.core.bundle import load_manifest
from tigertrap.core.md_results import read_md_results

PNG = "image/png"
JPEG = "image/jpeg"
SNIP_PARAMS = {"INPUT_DIR": "datasets/e2e/images", "MD_FILE": "md.json", "SNIP_SIZE": 64}
#: Safety limits, not synchronisation.
HEALTH_TIMEOUT_S = 120
JOB_TIMEOUT_S = 300
#: The model-building pipeline: five stages, a tiny training run in the train container.
PIPELINE_TIMEOUT_S = 900
FULL_FRAMES = ("tiger", "leopard_cat", "empty")
#: The stages docker-compose.yml runs a worker container for.
WORKER_STAGES = {"download", "detect", "snip", "train", "classify", "publish"}

pytestmark = pytest.mark.usefixtures("stack")


def test_every_long_running_service_reports_healthy_and_runs_as_the_one_image_user(stack: Stack):
    health = api_health(stack)
    assert health["status"] in ("ok", "degraded"), health
    for service in SERVICES:
        wait_until(lambda s=service: stack.healthy(s), HEALTH_TIMEOUT_S,
                   f"{service} to report healthy:\n{stack.logs(service)}")
    for service in SERVICES[1:]:
        ids = stack.podman("exec", stack.container(service), "id", "-u").stdout.split()
        assert ids == [str(IMAGE_UID)], f"{service} runs as {ids}"
    # every worker container answers the API's health check on its stage's queue
    wait_until(lambda: not set(api_health(stack)["stages_without_workers"]) & WORKER_STAGES,
               HEALTH_TIMEOUT_S, "every stage worker to answer the API's health check")


def test_crops_are_classified_through_the_published_port(stack: Stack):
    with stack.client() as client:
        response = client.post("/v1/classify", data={"mode": "crops"}, files=[
            ("images", ("t.png", class_png("tiger"), PNG)),
            ("images", ("s.png", class_png("sambar"), PNG))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny" and body["mode"] == "crops"
    tiger, sambar = body["images"]
    assert (tiger["file"], tiger["top_species"], tiger["tiger"]) == ("t.png", "tiger", True)
    assert (sambar["file"], sambar["top_species"], sambar["tiger"]) == ("s.png", "sambar", False)


def test_full_frames_are_detected_by_the_detect_worker_container_then_classified(
        stack: Stack, fixtures_dir: Path):
    files = []
    for species in FULL_FRAMES:
        path = sorted((fixtures_dir / "images" / species).iterdir())[0]
        files.append(("images", (path.name, path.read_bytes(), JPEG)))
    with stack.client(timeout=JOB_TIMEOUT_S) as client:
        response = client.post("/v1/classify", data={"mode": "full"}, files=files)
    assert response.status_code == 200, response.text + stack.logs("detect")
    images = response.json()["images"]
    assert [image["file"] for image in images] == [f[1][0] for f in files]
    detections = [d for image in images for d in image["detections"]]
    assert detections, "the tiny detector finds boxes in real frames"
    for detection in detections:
        assert detection["conf"] >= 0.05 and all(0 <= v <= 1 for v in detection["bbox"])
        if detection["category"] != "1":
            assert detection["species"] == [], "only animals are classified"


def _snip_locally(images_dir: Path, out: Path) -> Path:
    """The same snip with the local command, on a copy of the dataset."""
    shutil.copytree(images_dir, out)
    result = subprocess.run(
        [sys.executable, "-m", "tigertrap.core", "snip", "--input-dir", str(out),
         "--snip-size", "64"], capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 0, result.stderr
    return out


def test_a_single_stage_container_snips_the_shared_volume_like_the_local_command(
        stack: Stack, fixtures_dir: Path, tmp_path: Path):
    images_dir = make_snip_dataset(stack.data / "solo", fixtures_dir, images=4)
    chown_tree(stack.data / "solo")
    local = _snip_locally(images_dir, tmp_path / "local")
    container_dir = "/data/" + images_dir.relative_to(stack.data).as_posix()
    stack.compose("run", "--rm", "-T", "snip", "tigertrap", "snip", "--input-dir",
                  container_dir, "--snip-size", "64", timeout=300)

    assert_one_complete_snip_output(images_dir, 4)
    in_container = sorted(p.relative_to(images_dir) for p in (images_dir / "snips").rglob("*")
                          if p.is_file())
    assert in_container == sorted(p.relative_to(local) for p in (local / "snips").rglob("*")
                                  if p.is_file())
    for crop in (images_dir / "snips").rglob("*.jpg"):
        assert crop.read_bytes() == (local / crop.relative_to(images_dir)).read_bytes()
    # written by the image user, group-writable folders for the other stages
    snips = images_dir / "snips"
    assert snips.stat().st_uid == IMAGE_UID and snips.stat().st_mode & 0o020


def test_the_model_building_pipeline_runs_across_the_stage_containers(
        stack: Stack, fixtures_dir: Path):
    """download (from the image server container, LILA-shaped metadata) -> detect (the detect
    container, tiny detector) -> snip by class -> train (the train container, a tiny run) ->
    publish dry run, submitted as one named pipeline through the published port."""
    from tests.detect.conftest import FRAMES
    from tests.download.conftest import lila_row, write_metadata

    api_health(stack)
    served = stack.logs_dir / "served" / "pipeline"
    served.mkdir()
    rows = []
    for class_name, frames in {"bear": ("bear", "civet"), "cat": ("leopard_cat",)}.items():
        for frame in frames:
            for copy in range(6):
                name = f"{frame}_{copy}.jpg"
                shutil.copyfile(fixtures_dir / "images" / frame / FRAMES[frame], served / name)
                rows.append(lila_row(
                    url_gcp=f"http://images:8080/pipeline/{name}", url_aws="", url_azure="",
                    common_name=class_name, image_id=f"ds : {name}",
                    sequence_id=f"ds : seq-{name}", location_id=f"ds : loc-{len(rows) % 6}"))
    for path in [served, *served.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    inputs = stack.data / "inputs"
    inputs.mkdir()
    write_metadata(inputs / "lila.csv", rows)
    (inputs / "spec.yaml").write_text("classes:\n  bear:\n    rules:\n      - {common_name: bear}"
                                      "\n  cat:\n    rules:\n      - {common_name: cat}\n")
    chown_tree(inputs)
    with stack.client() as client:
        response = client.post("/v1/jobs", json={"pipeline": "build-model", "params": {
            "download": {"METADATA": "inputs/lila.csv", "CLASS_SPEC": "inputs/spec.yaml",
                         "DATASET_NAME": "pipe", "MIRRORS": "gcp", "RETRIES": 0,
                         "TRAIN_FRACTION": 0.6, "VAL_FRACTION": 0.4, "TEST_FRACTION": 0.0},
            "detect": {"MD_MODEL": DETECTOR_WEIGHTS},
            "snip": {"SNIP_SIZE": 64},
            "train": {"CLASSES": ["bear", "cat"], "MODEL": "ResNet18", "WEIGHTS": "none",
                      "INPUT_SIZE": 32, "FROZ_EPOCH": 1, "BUF": 1, "PROG_STAGE_LEN": 1,
                      "PROG_TOT_EPOCH": 1, "MAGNITUDES": [0.1], "DROPOUTS": [0.1],
                      "CLASS_SAMPLES_DEFAULT": 8, "BATCH_SIZE": 8, "WANDB_MODE": "disabled",
                      "SAVEFILE": "pipe"}}})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    final = stack.wait_for_job(job_id, PIPELINE_TIMEOUT_S)
    assert final["status"] == "succeeded", final.get("error") or "\n".join(
        stack.logs(service) for service in ("download", "detect", "snip", "train"))
    assert [p["status"] for p in final["stage_progress"]] == ["succeeded"] * 5
    results = final["results"]
    dataset = stack.data / "datasets" / "pipe"
    assert results["download"]["lila"]["complete"] == len(rows)
    md = read_md_results(dataset / "md.json")
    assert len(md.images) == len(rows) and not any(entry.failure for entry in md.images)
    with open(dataset / "snips" / "snips.csv", newline="") as handle:
        snips = list(csv.DictReader(handle))
    assert snips and {row["class"] for row in snips} == {"bear", "cat"}
    assert results["train"]["bundle_dir"] == "models/classifiers/pipe"
    assert load_manifest(stack.data / "models" / "classifiers" / "pipe").input_size == 32
    published = stack.data / results["publish"]["folder"]
    assert (published / "README.md").is_file()
    # every stage wrote as the one image user, into folders the next stage could write in
    assert (dataset / "md.json").stat().st_uid == IMAGE_UID


def test_a_worker_container_killed_mid_job_is_redelivered_and_completes_once(
        stack: Stack, fixtures_dir: Path):
    images = 300
    make_snip_dataset(stack.data, fixtures_dir, images=images)
    chown_tree(stack.data / "datasets")
    images_dir = stack.data / SNIP_PARAMS["INPUT_DIR"]
    with stack.client() as client:
        response = client.post("/v1/jobs", json={"stage": "snip", "params": SNIP_PARAMS})
    assert response.status_code in (200, 201, 202), response.text
    job_id = response.json()["id"]
    wait_until(lambda: stack.job(job_id)["processed"] > 0, JOB_TIMEOUT_S, "the first snips")

    stack.podman("kill", "--signal", "KILL", stack.container("snip"))
    killed_at = time.monotonic()
    status = stack.job(job_id)
    assert status["status"] == "running" and status["processed"] < images
    # compose's restart policy brings the worker back; if the engine does not, start it
    if stack.podman("inspect", "--format", "{{.State.Running}}", stack.container("snip"),
                    check=False).stdout.strip() != "true":
        stack.podman("start", stack.container("snip"), check=False)

    final = stack.wait_for_job(job_id, VISIBILITY_TIMEOUT_S + JOB_TIMEOUT_S)
    assert final["status"] == "succeeded", final.get("error") or stack.logs("snip")
    assert time.monotonic() - killed_at < VISIBILITY_TIMEOUT_S + JOB_TIMEOUT_S
    assert_one_complete_snip_output(images_dir, images)
    with Image.open(next((images_dir / "snips").rglob("*.jpg"))) as crop:
        assert crop.size == (64, 64)
